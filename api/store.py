"""Tasks as Temporal sees them: the API keeps no state; every answer is read from Temporal.

- create: start `PrewarmWorkflow` by name (workflow ID = task ID), with the initial search
  attributes and the memo the list reads. An Idempotency-Key first reserves a deterministic
  workflow ID, so two concurrent retries collide in Temporal itself (docs/api.md).
- get: a running task answers the `progress` query (bounded to 2 s); a closed one is read from
  its close event, which needs no worker; with no worker, the search attributes and the
  workflow input give the last recorded state.
- list: visibility only (count + list), never a per-task query.
- cancel: a Temporal cancel, then up to 5 s waiting for the close event.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

from temporalio.api.common.v1 import WorkflowExecution as WorkflowExecutionRef
from temporalio.api.enums.v1 import EventType, HistoryEventFilterType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.common import (
    QueryRejectCondition,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import ANONYMOUS, Principal, Role
from api.errors import (
    Conflict,
    Forbidden,
    TaskNotFound,
    TemporalError,
    TemporalUnavailable,
    TooManyTasks,
)
from common import temporal as t
from common.models import (
    PrewarmInput,
    Progress,
    ProgressSummary,
    TaskCreated,
    TaskList,
    TaskSpec,
    TaskStatus,
    TaskSummary,
    TaskView,
    utcnow,
)
from common.settings import Settings

log = logging.getLogger(__name__)

TASK_ID_RE = re.compile(r"task-[0-9]{8}-[0-9]{6}-[0-9a-f]{8}")  # fullmatch, ASCII digits
RESERVATION_WORKFLOW = "IpsIdempotencyReservation"
MEMO_BODY_HASH = "bodyHash"
MEMO_TASK_ID = "taskId"
MEMO_IDEMPOTENCY_KEY = "idempotencyKey"
MEMO_OWNER = "owner"
RUNNING_CAP_RETRY_AFTER_SECONDS = 30

QUERY_TIMEOUT = timedelta(seconds=2)
_CLOSED_MEANWHILE = "closed"  # the query was refused: the task closed after the describe
RPC_TIMEOUT = timedelta(seconds=5)
CANCEL_WAIT_SECONDS = 5.0
# A reservation is terminated as soon as it is made; this only bounds one left behind by a crash.
RESERVATION_TIMEOUT = timedelta(minutes=1)
LIST_PAGE_SIZE = 1000
# Below this many matching tasks, a list fetches them all and sorts them; above, it narrows to a
# recent StartTime window that holds at least offset + limit of them (see `list_tasks`).
LIST_FETCH_ALL_BELOW = 300
LIST_FIRST_WINDOW = timedelta(minutes=10)
LIST_WINDOW_GROWTH = 4
LIST_MAX_WINDOW = timedelta(days=3650)

_UNAVAILABLE = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.CANCELLED,
}
_CLOSED_FAILED_MESSAGES = {
    WorkflowExecutionStatus.TERMINATED: "task terminated in Temporal (by an operator)",
    WorkflowExecutionStatus.TIMED_OUT: "task timed out in Temporal (workflow execution timeout)",
    WorkflowExecutionStatus.FAILED: "task workflow failed",
}

T = TypeVar("T")


def new_task_id(now: datetime) -> str:
    """`task-YYYYMMDD-HHMMSS-<8 hex>` in UTC, the original service's format."""
    return f"task-{now.astimezone(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


def body_hash(spec: TaskSpec) -> str:
    """Hash of the validated spec (defaults applied, duplicates dropped): one meaning, one hash."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def reservation_id(task_queue: str, key: str, owner: str = ANONYMOUS.id) -> str:
    """Deterministic per (deployment, caller, key): two concurrent retries race for this one ID,
    and one caller's key never finds another caller's task."""
    scoped = key if owner == ANONYMOUS.id else f"{owner}\0{key}"
    digest = hashlib.sha256(f"{task_queue}\0{scoped}".encode()).hexdigest()[:40]
    return f"ips-idempotency-{digest}"


def _quote(value: str) -> str:
    """A visibility-query string literal; our values never legitimately hold quotes."""
    if "'" in value or "\\" in value:
        raise ValueError(f"{value!r} cannot be used in a visibility query")
    return f"'{value}'"


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- status derivation: the list filter and the item status must agree -------------------------

# Visibility clause per status; mirrors `derive_status` exactly, so `total` counts what is listed.
STATUS_CLAUSES: dict[TaskStatus, str] = {
    TaskStatus.PENDING: "ExecutionStatus = 'Running' AND IpsStatus = 'pending'",
    TaskStatus.RUNNING: "ExecutionStatus = 'Running' AND IpsStatus != 'pending'",
    TaskStatus.COMPLETED: (
        "ExecutionStatus = 'Completed' AND IpsStatus != 'failed' AND IpsStatus != 'cancelled'"
    ),
    TaskStatus.FAILED: (
        "((ExecutionStatus = 'Completed' AND IpsStatus = 'failed')"
        " OR ExecutionStatus = 'Failed' OR ExecutionStatus = 'Terminated'"
        " OR ExecutionStatus = 'TimedOut')"
    ),
    TaskStatus.CANCELLED: (
        "((ExecutionStatus = 'Completed' AND IpsStatus = 'cancelled')"
        " OR ExecutionStatus = 'Canceled')"
    ),
}


def _sa_status(sa: TypedSearchAttributes) -> TaskStatus | None:
    raw = sa.get(t.STATUS_KEY)
    try:
        return TaskStatus(raw) if raw is not None else None
    except ValueError:
        return None


def derive_status(
    execution: WorkflowExecutionStatus | None, sa: TypedSearchAttributes
) -> TaskStatus:
    """The task status from the execution status and IpsStatus, without asking a worker."""
    recorded = _sa_status(sa)
    if execution == WorkflowExecutionStatus.RUNNING:
        return TaskStatus.PENDING if recorded in (None, TaskStatus.PENDING) else TaskStatus.RUNNING
    if execution == WorkflowExecutionStatus.COMPLETED:
        if recorded in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            return recorded
        return TaskStatus.COMPLETED
    if execution == WorkflowExecutionStatus.CANCELED:
        return TaskStatus.CANCELLED
    return TaskStatus.FAILED


def _sa_int(sa: TypedSearchAttributes, key: SearchAttributeKey[Any]) -> int:
    """Counters are Int, Double or Keyword (SQL visibility caps each type at three)."""
    value = sa.get(key)
    if value is None:
        return 0
    try:
        return max(0, int(float(value)))
    except (TypeError, ValueError):
        return 0


def progress_from_sa(sa: TypedSearchAttributes) -> Progress:
    total = _sa_int(sa, t.TOTAL_NODES_KEY)
    completed = _sa_int(sa, t.COMPLETED_NODES_KEY)
    failed = _sa_int(sa, t.FAILED_NODES_KEY)
    warm = _sa_int(sa, t.WARM_NODES_KEY)
    return Progress(
        total_nodes=total,
        completed_nodes=completed,
        failed_nodes=failed,
        skipped_nodes=_sa_int(sa, t.SKIPPED_NODES_KEY),
        already_warm_nodes=warm,
        current_batch=_sa_int(sa, t.CURRENT_BATCH_KEY),
        total_batches=_sa_int(sa, t.TOTAL_BATCHES_KEY),
        percentage=Progress.compute_percentage(total, completed, failed, warm),
    )


async def _memo_task(execution: WorkflowExecution) -> TaskCreated | None:
    try:
        memo = await execution.memo()
        raw = memo.get(t.MEMO_TASK)
        return TaskCreated.model_validate(raw) if raw is not None else None
    except Exception:  # a workflow of our type started by hand may carry anything
        log.warning("workflow %s has no readable task memo", execution.id)
        return None


@asynccontextmanager
async def temporal_errors(what: str) -> AsyncIterator[None]:
    """Temporal RPC failures as API errors: unreachable/overloaded -> 503, the rest -> 502."""
    try:
        yield
    except RPCError as err:
        if err.status in _UNAVAILABLE:
            raise TemporalUnavailable(f"{what}: Temporal did not answer ({err.message})") from err
        if "no mapping defined for search attribute" in err.message:  # see GET /readyz
            raise TemporalUnavailable(
                f"{what}: the search attributes are not registered yet ({err.message}); "
                "GET /readyz names them and the command that adds them"
            ) from err
        raise TemporalError(f"{what}: {err.message}") from err
    except TimeoutError as err:
        raise TemporalUnavailable(f"{what}: Temporal did not answer in time") from err


@dataclass
class CreateOutcome:
    task: TaskCreated
    created: bool


@dataclass
class CancelOutcome:
    task_id: str
    status: TaskStatus | None  # None: cancel requested, not confirmed yet

    @property
    def confirmed(self) -> bool:
        return self.status == TaskStatus.CANCELLED


class TaskStore:
    """The task operations over one Temporal client; cheap to build per request.

    The client is fetched on the first operation, not at construction, so that a request with
    bad input gets its 400 even while Temporal is down.
    """

    client: Client

    def __init__(self, get_client: Callable[[], Awaitable[Client]], settings: Settings) -> None:
        self._get_client = get_client
        self.settings = settings
        self.queue = settings.temporal_task_queue

    async def _connect(self) -> None:
        if not hasattr(self, "client"):
            self.client = await self._get_client()

    # --- create ---------------------------------------------------------------------------

    async def create(
        self, spec: TaskSpec, idempotency_key: str | None, caller: Principal = ANONYMOUS
    ) -> CreateOutcome:
        await self._connect()
        digest = body_hash(spec)
        now = utcnow().replace(microsecond=0)
        task_id, created_at = new_task_id(now), now
        await self._check_running_cap(idempotency_key, caller)
        if idempotency_key is not None:
            task_id, created_at = await self._reserve(idempotency_key, digest, task_id, now, caller)
        task = TaskCreated(
            task_id=task_id,
            status=TaskStatus.PENDING,
            images=spec.images,
            batch_size=spec.batch_size,
            node_selector=spec.node_selector,
            created_at=created_at,
        )
        pairs: list[SearchAttributePair[Any]] = [SearchAttributePair(t.STATUS_KEY, "pending")]
        if idempotency_key is not None:
            pairs.append(SearchAttributePair(t.IDEMPOTENCY_KEY, idempotency_key))
        memo: dict[str, Any] = {
            t.MEMO_TASK: task.model_dump(mode="json"),
            MEMO_BODY_HASH: digest,
            MEMO_OWNER: caller.id,
        }
        try:
            async with temporal_errors("starting the task"):
                await self.client.start_workflow(
                    t.WORKFLOW_NAME,
                    PrewarmInput(task_id=task_id, spec=spec, created_at=created_at),
                    id=task_id,
                    task_queue=self.queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    search_attributes=TypedSearchAttributes(pairs),
                    memo=memo,
                    static_summary=_summary(spec),
                    rpc_timeout=RPC_TIMEOUT,
                )
        except WorkflowAlreadyStartedError:
            if idempotency_key is None:  # 32 random bits in the same second: just try again
                return await self.create(spec, None, caller)
            # Another request with the same key (and body) got there first: the same task.
            desc = await self._describe(task_id)
            existing = await _memo_task(desc) or task
            existing.status = derive_status(desc.status, desc.typed_search_attributes)
            return CreateOutcome(existing, created=False)
        log.info(
            "task created: %d image(s), batch size %d",
            len(spec.images),
            spec.batch_size,
            extra={"taskId": task_id},
        )
        return CreateOutcome(task, created=True)

    async def _check_running_cap(self, key: str | None, caller: Principal) -> None:
        """429 when IPS_MAX_RUNNING_TASKS tasks run; a retry of a reserved key is never refused.

        Visibility counts lag a little, so the cap is approximate under a burst of creates."""
        cap = self.settings.ips_max_running_tasks
        if cap <= 0:
            return
        query = f"{self._base_query(None)} AND ExecutionStatus = 'Running'"
        if await self._count(query) < cap:
            return
        if key is not None:
            rid = reservation_id(self.queue, key, caller.id)
            try:
                await self.client.get_workflow_handle(rid).describe(rpc_timeout=RPC_TIMEOUT)
                return  # a retry of an accepted request: answered as before, never refused
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise TemporalUnavailable(f"checking the key: {err.message}") from err
        raise TooManyTasks(
            f"{cap} tasks are running, the most IPS_MAX_RUNNING_TASKS allows; retry later",
            retry_after=RUNNING_CAP_RETRY_AFTER_SECONDS,
        )

    async def _reserve(
        self, key: str, digest: str, task_id: str, now: datetime, caller: Principal
    ) -> tuple[str, datetime]:
        """Claim the key with a deterministic workflow ID, or read the task that claimed it.

        Temporal rejects a second start of the same workflow ID (REJECT_DUPLICATE also covers a
        closed one until the namespace retention removes it), so of two concurrent retries
        exactly one reserves; both then start the prewarm workflow under the reserved task ID,
        and the slower start collides with WorkflowAlreadyStartedError.
        """
        rid = reservation_id(self.queue, key, caller.id)
        memo = {MEMO_TASK_ID: task_id, "createdAt": now.isoformat(), MEMO_BODY_HASH: digest}
        try:
            async with temporal_errors("reserving the idempotency key"):
                handle = await self.client.start_workflow(
                    RESERVATION_WORKFLOW,
                    id=rid,
                    # No worker polls this queue: the reservation never runs any code.
                    task_queue=f"{self.queue}-idempotency",
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    execution_timeout=RESERVATION_TIMEOUT,
                    memo=memo,
                    static_summary=f"Idempotency-Key reservation for {task_id} (not a task)",
                    rpc_timeout=RPC_TIMEOUT,
                )
        except WorkflowAlreadyStartedError:
            async with temporal_errors("reading the idempotency key"):
                desc = await self.client.get_workflow_handle(rid).describe(rpc_timeout=RPC_TIMEOUT)
                stored = await desc.memo()
            claimed_by = str(stored.get(MEMO_TASK_ID, ""))
            if stored.get(MEMO_BODY_HASH) != digest:
                raise Conflict(
                    "Idempotency-Key was already used with a different request body "
                    f"(task {claimed_by}); use a new key for a different task",
                    task_id=claimed_by or None,
                ) from None
            return claimed_by, datetime.fromisoformat(str(stored["createdAt"]))
        try:  # best effort: an open reservation would otherwise sit in the Web UI for a minute
            await handle.terminate(reason="idempotency key reserved", rpc_timeout=RPC_TIMEOUT)
        except RPCError as err:
            log.debug("could not close reservation %s: %s", rid, err)
        return task_id, now

    # --- get ------------------------------------------------------------------------------

    async def _describe(self, task_id: str) -> WorkflowExecutionDescription:
        if not TASK_ID_RE.fullmatch(task_id):
            raise TaskNotFound(task_id)
        try:
            async with temporal_errors("reading the task"):
                desc = await self.client.get_workflow_handle(task_id).describe(
                    rpc_timeout=RPC_TIMEOUT
                )
        except TemporalError as err:
            cause = err.__cause__
            if isinstance(cause, RPCError) and cause.status == RPCStatusCode.NOT_FOUND:
                raise TaskNotFound(task_id) from None
            raise
        if desc.workflow_type != t.WORKFLOW_NAME or desc.task_queue != self.queue:
            raise TaskNotFound(task_id)  # not a task of this deployment
        return desc

    async def get(self, task_id: str) -> TaskView:
        """Describe and query at once: a running task costs one round trip, not two in a row.

        The describe still decides (unknown, another deployment's task, closed); a query answer
        is used only for a task it confirms running.
        """
        if not TASK_ID_RE.fullmatch(task_id):  # before Temporal: a bad ID is a 404 even then
            raise TaskNotFound(task_id)
        await self._connect()
        query = asyncio.create_task(self._query(task_id))
        try:
            desc = await self._describe(task_id)
        except BaseException:
            query.cancel()
            await asyncio.gather(query, return_exceptions=True)
            raise
        if desc.status != WorkflowExecutionStatus.RUNNING:
            query.cancel()
            await asyncio.gather(query, return_exceptions=True)
            return _with_schedule(await self._closed_view(desc), desc)
        live, why = await query
        if live is not None:
            return _with_schedule(live, desc)
        if why == _CLOSED_MEANWHILE:
            return _with_schedule(await self._closed_view(await self._describe(task_id)), desc)
        return _with_schedule(
            await self._fallback_view(
                desc, note=f"live progress unavailable: {why}; showing the last recorded counters"
            ),
            desc,
        )

    async def _query(self, task_id: str) -> tuple[TaskView | None, str]:
        """The live view, or None and why not (said to the client in `message`).

        NOT_OPEN: a closed workflow refuses at once, rather than have a worker replay its
        whole history to answer; its result is read instead.
        """
        handle = self.client.get_workflow_handle(task_id)
        try:
            async with asyncio.timeout(QUERY_TIMEOUT.total_seconds() + 0.5):
                view = await handle.query(
                    t.QUERY_PROGRESS,
                    result_type=TaskView,
                    reject_condition=QueryRejectCondition.NOT_OPEN,
                    rpc_timeout=QUERY_TIMEOUT,
                )
        except WorkflowQueryRejectedError:
            return None, _CLOSED_MEANWHILE
        except (RPCError, TimeoutError) as err:
            log.info("progress query unanswered (%s); falling back", err, extra={"taskId": task_id})
            return None, "no worker answered within 2 s"
        except WorkflowQueryFailedError as err:
            log.warning("progress query failed: %s", err, extra={"taskId": task_id})
            return None, f"the progress query failed ({err})"
        return (view if isinstance(view, TaskView) else TaskView.model_validate(view)), ""

    async def _history_event(
        self, desc: WorkflowExecution, *, close: bool, wait: bool = False
    ) -> HistoryEvent | None:
        req = GetWorkflowExecutionHistoryRequest(
            namespace=self.client.namespace,
            execution=WorkflowExecutionRef(workflow_id=desc.id, run_id=desc.run_id),
            maximum_page_size=1,
            wait_new_event=wait,
            history_event_filter_type=(
                HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT
                if close
                else HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT
            ),
            skip_archival=True,
        )
        resp = await self.client.workflow_service.get_workflow_execution_history(
            req, retry=not wait, timeout=None if wait else RPC_TIMEOUT
        )
        return resp.history.events[0] if resp.history.events else None

    async def _wait_close(self, run: WorkflowExecution) -> HistoryEvent:
        """Long-poll the run's close event; the server ends each poll empty after a while."""
        while True:
            event = await self._history_event(run, close=True, wait=True)
            if event is not None:
                return event

    async def _input(self, desc: WorkflowExecution) -> PrewarmInput | None:
        """The workflow input (spec, createdAt, carried state) from the run's first event."""
        try:
            async with temporal_errors("reading the task input"):
                event = await self._history_event(desc, close=False)
            if event is None or event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                return None
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            (value,) = await self.client.data_converter.decode(payloads, [PrewarmInput])
            return value if isinstance(value, PrewarmInput) else None
        except (ValueError, TypeError, TemporalError) as err:
            log.warning("unreadable task input: %s", err, extra={"taskId": desc.id})
            return None

    async def _closed_view(
        self, desc: WorkflowExecution, event: HistoryEvent | None = None
    ) -> TaskView:
        """A closed task from its close event: no worker needed."""
        if event is None:
            async with temporal_errors("reading the task result"):
                event = await self._history_event(desc, close=True)
        if event is not None and event.HasField("workflow_execution_completed_event_attributes"):
            payloads = event.workflow_execution_completed_event_attributes.result.payloads
            try:
                (view,) = await self.client.data_converter.decode(payloads, [TaskView])
                if isinstance(view, TaskView):
                    return view
            except (ValueError, TypeError) as err:
                log.warning("unreadable task result: %s", err, extra={"taskId": desc.id})
            return await self._fallback_view(desc)
        status = desc.status
        message = _CLOSED_FAILED_MESSAGES.get(status) if status is not None else None
        if event is not None:
            if event.HasField("workflow_execution_terminated_event_attributes"):
                reason = event.workflow_execution_terminated_event_attributes.reason
                status = WorkflowExecutionStatus.TERMINATED
                message = f"{_CLOSED_FAILED_MESSAGES[status]}: {reason or 'no reason given'}"
            elif event.HasField("workflow_execution_failed_event_attributes"):
                failure = event.workflow_execution_failed_event_attributes.failure
                status = WorkflowExecutionStatus.FAILED
                message = f"{_CLOSED_FAILED_MESSAGES[status]}: {failure.message or 'no message'}"
            elif event.HasField("workflow_execution_timed_out_event_attributes"):
                status = WorkflowExecutionStatus.TIMED_OUT
                message = _CLOSED_FAILED_MESSAGES[status]
            elif event.HasField("workflow_execution_canceled_event_attributes"):
                status = WorkflowExecutionStatus.CANCELED
                message = None
        return await self._fallback_view(desc, status_override=status, note=message)

    async def _fallback_view(
        self,
        desc: WorkflowExecution,
        *,
        status_override: WorkflowExecutionStatus | None = None,
        note: str | None = None,
    ) -> TaskView:
        """The last recorded state: search attributes, memo and the workflow input."""
        sa = desc.typed_search_attributes
        status = derive_status(status_override or desc.status, sa)
        memo = await _memo_task(desc)
        inp = await self._input(desc)
        spec = inp.spec if inp is not None else None
        created_at = (
            inp.created_at if inp else memo.created_at if memo else desc.start_time
        ).astimezone(UTC)
        state = inp.state if inp is not None else None
        started_at = state.started_at if state is not None and state.started_at else None
        if started_at is None and status != TaskStatus.PENDING:
            started_at = desc.start_time
        view = TaskView(
            task_id=desc.id,
            status=status,
            images=spec.images if spec else (memo.images if memo else []),
            batch_size=spec.batch_size if spec else (memo.batch_size if memo else 1),
            node_selector=spec.node_selector if spec else (memo.node_selector if memo else {}),
            progress=progress_from_sa(sa),
            created_at=created_at,
            started_at=started_at,
            finished_at=desc.close_time,
            message=note,
        )
        if spec is not None:
            view.node_names = spec.node_names
            view.image_pull_policy = spec.image_pull_policy
            view.strategy = spec.strategy
            view.timeout_seconds = spec.timeout_seconds
            view.max_failure_ratio = spec.max_failure_ratio
        if state is not None:
            view.failed_node_details = state.failed_node_details
            view.skipped_node_details = state.skipped_node_details
        return view

    # --- list -----------------------------------------------------------------------------

    def _base_query(self, status: TaskStatus | None, schedule_id: str | None = None) -> str:
        q = f"WorkflowType = {_quote(t.WORKFLOW_NAME)} AND TaskQueue = {_quote(self.queue)}"
        if schedule_id is not None:  # the runs of one schedule (api/schedules.py)
            q += f" AND {t.SearchAttr.SCHEDULE_ID} = {_quote(schedule_id)}"
        if status is None:
            return f"{q} AND ExecutionStatus != 'ContinuedAsNew'"
        return f"{q} AND {STATUS_CLAUSES[status]}"

    async def _count(self, query: str) -> int:
        async with temporal_errors("counting tasks"):
            return (await self.client.count_workflows(query, rpc_timeout=RPC_TIMEOUT)).count

    async def list_tasks(
        self, status: TaskStatus | None, limit: int, offset: int, schedule_id: str | None = None
    ) -> TaskList:
        """Newest first from visibility alone.

        SQL visibility cannot ORDER BY and returns open runs before closed ones (by close
        time), so the API sorts by start time itself. To keep that cheap it first finds, with
        count queries, a recent StartTime window holding at least offset + limit tasks, then
        fetches only that window.
        """
        await self._connect()
        query = self._base_query(status, schedule_id)
        total = await self._count(query)
        if offset >= total:
            return TaskList(tasks=[], total=total, limit=limit, offset=offset)
        needed = offset + limit
        window_query = query
        if total > LIST_FETCH_ALL_BELOW:
            now = utcnow()
            span = LIST_FIRST_WINDOW
            while span < LIST_MAX_WINDOW:
                candidate = f"{query} AND StartTime >= {_quote(_ts(now - span))}"
                in_window = await self._count(candidate)
                if in_window >= needed:
                    window_query = candidate
                    break
                if in_window >= total:
                    break
                span *= LIST_WINDOW_GROWTH
        executions: list[WorkflowExecution] = []
        async with temporal_errors("listing tasks"):
            async for wf in self.client.list_workflows(
                window_query, page_size=LIST_PAGE_SIZE, rpc_timeout=RPC_TIMEOUT
            ):
                executions.append(wf)
        executions.sort(key=lambda wf: (wf.start_time, wf.id), reverse=True)
        page = executions[offset : offset + limit]
        items = [await self._summary(wf) for wf in page]
        return TaskList(tasks=items, total=total, limit=limit, offset=offset)

    async def _summary(self, wf: WorkflowExecution) -> TaskSummary:
        sa = wf.typed_search_attributes
        memo = await _memo_task(wf)
        p = progress_from_sa(sa)
        return TaskSummary(
            task_id=wf.id,
            status=derive_status(wf.status, sa),
            images=memo.images if memo else [],
            progress=ProgressSummary(
                total_nodes=p.total_nodes,
                completed_nodes=p.completed_nodes,
                percentage=p.percentage,
            ),
            created_at=memo.created_at if memo else wf.start_time,
            schedule_id=sa.get(t.SearchAttr.SCHEDULE_ID.key),
        )

    # --- cancel ---------------------------------------------------------------------------

    async def _already_finished(self, desc: WorkflowExecution) -> NoReturn:
        final = await self._closed_view(desc)
        raise Conflict(
            f"task already finished with status {final.status.value}; nothing to cancel",
            task_id=desc.id,
            status=final.status,
        )

    async def _check_owner(self, desc: WorkflowExecution, caller: Principal) -> None:
        """A write token cancels only the tasks it created; an admin token any task."""
        if caller.may(Role.ADMIN):
            return
        try:
            owner = (await desc.memo()).get(MEMO_OWNER)
        except Exception:  # an unreadable memo: no proven owner
            owner = None
        if owner != caller.id:
            raise Forbidden(
                "this token did not create the task; only its creator or an admin token "
                "may cancel it",
                task_id=desc.id,
            )

    async def cancel(self, task_id: str, caller: Principal = ANONYMOUS) -> CancelOutcome:
        """Request a cancel and wait up to 5 s for the workflow to confirm by closing."""
        if not TASK_ID_RE.fullmatch(task_id):
            raise TaskNotFound(task_id)
        await self._connect()
        desc = await self._describe(task_id)
        await self._check_owner(desc, caller)
        if desc.status != WorkflowExecutionStatus.RUNNING:
            await self._already_finished(desc)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CANCEL_WAIT_SECONDS
        current: WorkflowExecution = desc
        while True:
            try:
                async with temporal_errors("cancelling the task"):
                    await self.client.get_workflow_handle(task_id, run_id=current.run_id).cancel(
                        rpc_timeout=RPC_TIMEOUT
                    )
            except TemporalError as err:
                cause = err.__cause__
                if isinstance(cause, RPCError) and cause.status == RPCStatusCode.NOT_FOUND:
                    # It closed between the describe and the cancel.
                    await self._already_finished(await self._describe(task_id))
                raise
            log.info("cancel requested", extra={"taskId": task_id})
            try:
                async with asyncio.timeout_at(deadline):
                    event = await self._wait_close(current)
            except TimeoutError:
                return CancelOutcome(task_id, None)
            except RPCError as err:
                log.warning("waiting for the cancel: %s", err, extra={"taskId": task_id})
                return CancelOutcome(task_id, None)
            if event is not None and event.HasField(
                "workflow_execution_continued_as_new_event_attributes"
            ):
                current = await self._describe(task_id)  # the next run: cancel that one
                if current.status != WorkflowExecutionStatus.RUNNING or loop.time() >= deadline:
                    return CancelOutcome(task_id, None)
                continue
            async with temporal_errors("reading the task after cancel"):
                closed = await self._describe(task_id)
            final = await self._closed_view(closed, event)
            if final.status != TaskStatus.CANCELLED:
                raise Conflict(
                    f"task finished with status {final.status.value} before the cancel took "
                    "effect; nothing to cancel",
                    task_id=task_id,
                    status=final.status,
                )
            return CancelOutcome(task_id, TaskStatus.CANCELLED)


def _with_schedule(view: TaskView, desc: WorkflowExecution) -> TaskView:
    """The schedule that started the task, from its IpsScheduleId (none for an API task)."""
    view.schedule_id = desc.typed_search_attributes.get(t.SearchAttr.SCHEDULE_ID.key)
    return view


def _summary(spec: TaskSpec) -> str:
    """A one-line summary for the Temporal Web UI."""
    first = spec.images[0]
    more = f" +{len(spec.images) - 1} more" if len(spec.images) > 1 else ""
    where = (
        f"{len(spec.node_names)} named node(s)"
        if spec.node_names
        else ("nodes " + ",".join(f"{k}={v}" for k, v in spec.node_selector.items()))
        if spec.node_selector
        else "all nodes"
    )
    return f"Prewarm {first}{more} on {where}, batches of {spec.batch_size}"
