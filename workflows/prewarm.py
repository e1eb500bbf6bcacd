"""PrewarmWorkflow: one durable workflow per prewarm task (workflow ID = task ID).

Deterministic orchestration only: Kubernetes is reached through activities called by name.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    RetryState,
    is_cancelled_exception,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from common.engine import (
        ACTIVITY_CLEANUP,
        ACTIVITY_LIST_NODES,
        ACTIVITY_PREWARM_NODES,
        SIGNAL_NODE_OUTCOMES,
        CleanupInput,
        CleanupResult,
        EngineState,
        ListNodesInput,
        NodeOutcome,
        NodeOutcomes,
        NodeSelection,
        PrewarmInput,
        PrewarmNodesInput,
        PrewarmNodesResult,
        PullSpec,
        trim,
    )
    from common.models import (
        FailedNodeDetail,
        FailureReason,
        Progress,
        Strategy,
        TaskStatus,
        TaskView,
    )
    from common.observability import TASKS_FINISHED
    from common.temporal import QUERY_PROGRESS, WORKFLOW_NAME, SearchAttr
    from workflows.timeouts import (
        CLEANUP_HEARTBEAT_TIMEOUT,
        CLEANUP_RETRY,
        CLEANUP_TIMEOUT,
        HEARTBEAT_TIMEOUT,
        LIST_NODES_HEARTBEAT_TIMEOUT,
        LIST_NODES_TIMEOUT,
        LIST_RETRY,
        PREWARM_HEARTBEAT_TIMEOUT,
        PREWARM_RETRY,
        PREWARM_RETRY_ALLOWANCE,
        PREWARM_RETRY_BY_TIME,
        batch_budget,
    )

# Continue as new after this many batches, or earlier when the server suggests it or the
# history passes HISTORY_BUDGET events: no run comes near Temporal's 10,000-event warning.
DEFAULT_UNITS_PER_RUN = 100
HISTORY_BUDGET = 5000
# A rolling window is one activity that keeps batchSize Jobs in flight over this many batches.
ROLLING_WINDOW_BATCHES = 10
ROLLING_WINDOW_MAX_NODES = 1000
# Counters are upserted at every batch boundary, and from live outcomes at most this often.
SEARCH_ATTR_MIN_INTERVAL = timedelta(seconds=1)
# Everything in the state and the view that grows with the node count is bounded, so a task at
# the API's maximum sizes (10,000 nodeNames, every node failed) stays far below Temporal's 2 MiB
# payload limit (measured in tests/workflows/test_payloads.py):
# - failure details: full up to FULL_DETAIL_BYTES; then messages are cut to SHORT_MESSAGE_CHARS
#   and a message repeating the previous one for the same image and reason is left empty; past
#   GROUP_AFTER_BYTES, further failed nodes are listed GROUP_SIZE to an entry per reason (the
#   entry's message names them all, a space between two), which costs a byte or so per node on
#   top of its name;
# - missing nodeNames: past 100, the listing reports them GROUP_SIZE to a sorted range, one
#   failure entry each (activities/prewarm.py);
# - the echoed nodeNames: the first NODE_NAMES_SHOWN in the view and in the continue-as-new
#   input (the node set is fixed by the listing, which has read them all).
FULL_DETAIL_BYTES = 32 * 1024
GROUP_AFTER_BYTES = 128 * 1024
SHORT_MESSAGE_CHARS = 80
GROUP_SIZE = 1000
NODE_NAMES_SHOWN = 100
_DETAIL_OVERHEAD = 90  # JSON keys, reason and timestamp of one detail

PATCH_RETRIES = (
    "prewarm-retries-by-time"  # issue 12: slim options (workflows/timeouts.py), unlimited attempts
)
PATCH_CANCEL_ON_TIMEOUT = "cancel-on-heartbeat-timeout"  # issue 12, item 9


class _Stop(Exception):
    """Raised inside the workflow to end `failed` with a message (not a Temporal failure)."""


@workflow.defn(name=WORKFLOW_NAME)
class PrewarmWorkflow:
    """Pre-pull `spec.images` on every eligible node, batch by batch (or rolling).

    The workflow ALWAYS completes normally and returns the final `TaskView`, whether the task
    ended `completed`, `failed` (with `message` saying why) or `cancelled`. A Temporal cancel is
    handled, not propagated: Job creation stops, the running batch activity is cancelled, a
    clean-up activity that cannot be cancelled deletes the task's Jobs and Pods, and the result
    carries status `cancelled` with progress frozen at the cancel. So a finished task's full
    details are readable from the workflow result with no worker running, and the real outcome
    is in the `IpsStatus` search attribute (the Temporal execution status is always Completed).

    State lives in one `EngineState`, carried across continue-as-new at batch boundaries; the
    workflow ID (the task ID) stays the same, so queries keep working across runs.
    """

    @workflow.init
    def __init__(self, task_input: PrewarmInput) -> None:
        self._input = task_input
        self._state = task_input.state.model_copy(deep=True) if task_input.state else EngineState()
        self._current_batch = 0
        self._seen: set[str] = set()
        self._frozen = False
        self._stop_reason: str | None = None
        self._handle: workflow.ActivityHandle[PrewarmNodesResult] | None = None
        self._units_this_run = 0
        self._last_counters: Any = None
        self._last_upsert = workflow.now() - SEARCH_ATTR_MIN_INTERVAL
        self._last_message: dict[tuple[str | None, FailureReason], str] = {}
        self._groups: dict[FailureReason, tuple[FailedNodeDetail, str, int]] = {}
        self._detail_bytes = sum(
            _detail_size(d.node_name, d.image, d.message) for d in self._state.failed_node_details
        )

    # --- Queries and signals -------------------------------------------------------------

    @workflow.query(name=QUERY_PROGRESS)
    def progress(self) -> TaskView:
        return self._view()

    @workflow.signal(name=SIGNAL_NODE_OUTCOMES)
    def node_outcomes(self, batch: NodeOutcomes) -> None:
        """Live outcomes from the running batch activity, so progress moves within a batch."""
        if self._frozen or batch.unit != self._current_batch:
            return
        for outcome in batch.outcomes:
            self._record(outcome)
        self._check_failure_ratio()
        self._upsert_counters(force=False)

    # --- Main ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, task_input: PrewarmInput) -> TaskView:
        state = self._state
        try:
            if not state.listed:
                state.started_at = workflow.now()
                self._set_status(TaskStatus.RUNNING)
                self._log("listing nodes")
                selection = await workflow.execute_activity(
                    ACTIVITY_LIST_NODES,
                    ListNodesInput(task_id=task_input.task_id, spec=task_input.spec),
                    result_type=NodeSelection,
                    start_to_close_timeout=LIST_NODES_TIMEOUT,
                    heartbeat_timeout=LIST_NODES_HEARTBEAT_TIMEOUT,
                    retry_policy=LIST_RETRY,
                    summary="list nodes",
                )
                self._apply_selection(selection)
            self._set_web_ui_details()
            while state.pending and self._stop_reason is None:
                if self._should_continue_as_new():
                    await self._continue_as_new()
                await self._run_unit()
            if self._stop_reason is not None:
                raise _Stop(self._stop_reason)
            return self._finish(TaskStatus.COMPLETED, self._completion_message())
        except _Stop as stop:
            self._frozen = True
            await self._cleanup()
            return self._finish(TaskStatus.FAILED, str(stop))
        except (asyncio.CancelledError, ActivityError) as err:
            self._frozen = True
            if self._stop_reason is None and self._is_cancel(err):
                self._log("cancel requested: stopping and cleaning up")
                await self._cleanup()
                return self._finish(TaskStatus.CANCELLED, "Task cancelled by request")
            message = self._stop_reason or _failure_reason(err)
            await self._cleanup()
            return self._finish(TaskStatus.FAILED, message)

    @staticmethod
    def _is_cancel(err: BaseException) -> bool:
        """A cancel, including one whose batch worker died: the heartbeat timeout then arrives
        with retry_state CANCEL_REQUESTED (Temporal retries nothing once a cancel is asked)."""
        if is_cancelled_exception(err):
            return True
        return (
            isinstance(err, ActivityError)
            and err.retry_state == RetryState.CANCEL_REQUESTED
            and workflow.patched(PATCH_CANCEL_ON_TIMEOUT)
        )

    # --- Units (a batch, or a rolling window) --------------------------------------------

    def _unit_size(self) -> int:
        spec = self._input.spec
        if spec.strategy == Strategy.ROLLING:
            return max(
                spec.batch_size,
                min(spec.batch_size * ROLLING_WINDOW_BATCHES, ROLLING_WINDOW_MAX_NODES),
            )
        return spec.batch_size

    async def _run_unit(self) -> None:
        state, spec = self._state, self._input.spec
        size = self._unit_size()
        nodes = state.pending[:size]
        batch_number = state.units_done + 1
        total = state.progress.total_batches
        self._current_batch, self._seen = batch_number, set()
        state.progress.current_batch = batch_number
        self._upsert_counters(force=True)
        in_flight = spec.batch_size if spec.strategy == Strategy.ROLLING else len(nodes)
        rounds = math.ceil(len(nodes) / in_flight)
        word = "window" if spec.strategy == Strategy.ROLLING else "batch"
        budget = batch_budget(rounds, spec.timeout_seconds, len(nodes))
        timeouts: dict[str, Any] = {
            "start_to_close_timeout": budget,
            "heartbeat_timeout": HEARTBEAT_TIMEOUT,
            "retry_policy": PREWARM_RETRY,
        }
        if workflow.patched(PATCH_RETRIES):
            timeouts.update(
                schedule_to_close_timeout=budget + PREWARM_RETRY_ALLOWANCE,
                heartbeat_timeout=PREWARM_HEARTBEAT_TIMEOUT,
                retry_policy=PREWARM_RETRY_BY_TIME,
            )
        self._handle = workflow.start_activity(
            ACTIVITY_PREWARM_NODES,
            PrewarmNodesInput(
                task_id=self._input.task_id,
                unit=batch_number,
                total_units=total,
                nodes=nodes,
                spec=PullSpec.of(spec),
                in_flight=in_flight,
            ),
            result_type=PrewarmNodesResult,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"{word} {batch_number}/{total}: {len(nodes)} nodes",
            **timeouts,
        )
        try:
            result = await self._handle
        except ActivityError as err:
            if self._stop_reason is not None and is_cancelled_exception(err):
                return
            raise
        finally:
            self._handle = None
        for outcome in result.outcomes:
            self._record(outcome)
        now = workflow.now()
        for node in nodes:
            if node not in self._seen:  # defensive: the activity reports every node it was given
                self._record(
                    NodeOutcome(
                        node_name=node,
                        ok=False,
                        failure=FailedNodeDetail(
                            node_name=node,
                            reason=FailureReason.CONTAINER_FAILED,
                            message="no outcome reported for this node",
                            timestamp=now,
                        ),
                    )
                )
        state.pending = state.pending[len(nodes) :]
        state.units_done = batch_number
        self._units_this_run += 1
        self._check_failure_ratio()
        self._upsert_counters(force=True)
        self._set_web_ui_details()

    def _should_continue_as_new(self) -> bool:
        if self._units_this_run == 0:
            return False
        info = workflow.info()
        budget = self._state.units_per_run or DEFAULT_UNITS_PER_RUN
        return (
            self._units_this_run >= budget
            or info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= HISTORY_BUDGET
        )

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        state = self._state
        state.events_in_previous_runs += workflow.info().get_current_history_length()
        state.runs += 1
        self._log(f"continuing as new (run {state.runs}, {len(state.pending)} nodes to go)")
        workflow.continue_as_new(
            PrewarmInput(
                task_id=self._input.task_id,
                spec=_spec_for_next_run(self._input.spec),
                created_at=self._input.created_at,
                state=state,
            )
        )

    # --- Clean-up ------------------------------------------------------------------------

    async def _cleanup(self) -> None:
        """Delete the task's Jobs and Pods; shielded, so a cancel cannot interrupt it."""
        task = asyncio.ensure_future(
            workflow.execute_activity(
                ACTIVITY_CLEANUP,
                CleanupInput(task_id=self._input.task_id),
                result_type=CleanupResult,
                start_to_close_timeout=CLEANUP_TIMEOUT,
                heartbeat_timeout=CLEANUP_HEARTBEAT_TIMEOUT,
                retry_policy=CLEANUP_RETRY,
                summary="delete the task's Jobs and Pods",
            )
        )
        while True:
            try:
                await asyncio.shield(task)
                return
            except asyncio.CancelledError:
                continue  # a cancel during clean-up changes nothing: finish the clean-up
            except ActivityError as err:
                workflow.logger.warning("clean-up failed: %s", _failure_reason(err))
                return

    # --- State ---------------------------------------------------------------------------

    def _apply_selection(self, selection: NodeSelection) -> None:
        state, spec = self._state, self._input.spec
        state.listed = True
        state.pending = list(selection.targets)
        state.skipped_node_details = list(selection.skipped)
        progress = state.progress
        progress.total_nodes = len(selection.targets) + selection.warm + selection.missing_count
        progress.already_warm_nodes = selection.warm
        progress.skipped_nodes = selection.skipped_count or len(selection.skipped)
        progress.total_batches = math.ceil(len(selection.targets) / self._unit_size())
        now = workflow.now()
        self._current_batch = 0
        for group in selection.missing_groups:
            progress.failed_nodes += group.count
            detail = FailedNodeDetail(
                node_name=f"{group.first} (+{group.count - 1} more)",
                reason=FailureReason.NODE_GONE,
                message=f"{group.count} nodes named in nodeNames do not exist, sorted from "
                f"{group.first} to {group.last}",
                timestamp=now,
            )
            self._detail_bytes += _detail_size(detail.node_name, None, detail.message)
            self._state.failed_node_details.append(detail)
        for name in selection.missing:
            self._record(
                NodeOutcome(
                    node_name=name,
                    ok=False,
                    failure=FailedNodeDetail(
                        node_name=name,
                        reason=FailureReason.NODE_GONE,
                        message=f"node {name!r} named in nodeNames does not exist",
                        timestamp=now,
                    ),
                )
            )
        progress.percentage = Progress.compute_percentage(
            progress.total_nodes,
            progress.completed_nodes,
            progress.failed_nodes,
            progress.already_warm_nodes,
        )
        self._upsert_counters(force=True)
        self._log(
            f"{selection.matched} nodes matched: {len(selection.targets)} to pull, "
            f"{selection.warm} already warm, "
            f"{progress.skipped_nodes} skipped, {selection.missing_count} missing"
        )
        if selection.matched == 0 and not selection.missing_count:
            what = f"nodeNames {spec.node_names[:5]}" if spec.node_names else _selector(spec)
            raise _Stop(f"no node matches {what}")
        if progress.total_nodes == 0:
            reasons = Counter(s.reason.value for s in selection.skipped)
            if selection.skipped_by_reason:
                reasons = Counter(selection.skipped_by_reason)
            parts = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
            raise _Stop(
                f"none of the {selection.matched} matching nodes can be prewarmed: "
                f"all were skipped ({parts})"
            )
        self._check_failure_ratio()
        if self._stop_reason is not None:
            raise _Stop(self._stop_reason)

    def _record(self, outcome: NodeOutcome) -> None:
        if outcome.node_name in self._seen:
            return
        self._seen.add(outcome.node_name)
        progress = self._state.progress
        if outcome.ok:
            progress.completed_nodes += 1
        else:
            progress.failed_nodes += 1
            detail = outcome.failure or FailedNodeDetail(
                node_name=outcome.node_name,
                reason=FailureReason.CONTAINER_FAILED,
                timestamp=workflow.now(),
            )
            if self._detail_bytes >= GROUP_AFTER_BYTES:
                self._group(detail, "failed with the same reason:")
            else:
                self._state.failed_node_details.append(self._compact(detail))
        progress.percentage = Progress.compute_percentage(
            progress.total_nodes,
            progress.completed_nodes,
            progress.failed_nodes,
            progress.already_warm_nodes,
        )

    def _group(self, d: FailedNodeDetail, what: str) -> None:
        """List the node in the open group entry of its reason (GROUP_SIZE names an entry)."""
        current = self._groups.get(d.reason)
        if current is None or current[2] >= GROUP_SIZE:
            entry = FailedNodeDetail(
                node_name=d.node_name,
                reason=d.reason,
                message=f"{what} {d.node_name}",
                timestamp=d.timestamp.replace(microsecond=0),
            )
            self._state.failed_node_details.append(entry)
            self._groups[d.reason] = (entry, d.node_name, 1)
            self._detail_bytes += _detail_size(d.node_name, None, entry.message)
            return
        entry, first, count = current
        entry.message += f" {d.node_name}"
        entry.node_name = f"{first} (+{count} more)"
        self._groups[d.reason] = (entry, first, count + 1)
        self._detail_bytes += len(d.node_name) + 1

    def _compact(self, d: FailedNodeDetail) -> FailedNodeDetail:
        message, image = trim(d.message), d.image
        if self._detail_bytes >= FULL_DETAIL_BYTES:
            key = (d.image, d.reason)
            if self._last_message.get(key) == message:
                message = ""
            else:
                self._last_message[key] = message
                message = trim(message, SHORT_MESSAGE_CHARS)
        self._detail_bytes += _detail_size(d.node_name, image, message)
        return d.model_copy(
            update={
                "message": message,
                "image": image,
                "timestamp": d.timestamp.replace(microsecond=0),
            }
        )

    def _check_failure_ratio(self) -> None:
        progress, ratio = self._state.progress, self._input.spec.max_failure_ratio
        if self._stop_reason is not None or progress.total_nodes == 0:
            return
        share = progress.failed_nodes / progress.total_nodes
        if share > ratio:
            self._stop_reason = (
                f"{progress.failed_nodes} of {progress.total_nodes} nodes failed ({share:.0%}), "
                f"more than maxFailureRatio {ratio:g}: stopped creating Jobs"
            )
            self._log(self._stop_reason)
            if self._handle is not None:
                self._handle.cancel()

    def _set_status(self, status: TaskStatus) -> None:
        self._state.status = status
        workflow.upsert_search_attributes([SearchAttr.STATUS.value_set(status)])

    def _finish(self, status: TaskStatus, message: str | None) -> TaskView:
        state = self._state
        state.message = message
        state.finished_at = workflow.now()
        self._set_status(status)
        self._upsert_counters(force=True)
        self._set_web_ui_details()
        self._log(f"finished {status.value}: {message or ''}")
        if not workflow.unsafe.is_replaying():
            # An in-memory counter, no command: replay-safe, counted by the worker that ends it.
            TASKS_FINISHED.labels(status.value).inc()
        return self._view()

    def _upsert_counters(self, *, force: bool) -> None:
        progress = self._state.progress
        counters = (
            progress.total_nodes,
            progress.completed_nodes,
            progress.failed_nodes,
            progress.skipped_nodes,
            progress.already_warm_nodes,
            progress.current_batch,
            progress.total_batches,
        )
        now = workflow.now()
        if counters == self._last_counters:
            return
        if not force and now - self._last_upsert < SEARCH_ATTR_MIN_INTERVAL:
            return
        self._last_counters, self._last_upsert = counters, now
        workflow.upsert_search_attributes(
            [
                SearchAttr.TOTAL_NODES.value_set(progress.total_nodes),
                SearchAttr.COMPLETED_NODES.value_set(progress.completed_nodes),
                SearchAttr.FAILED_NODES.value_set(progress.failed_nodes),
                # SQL visibility caps Int at 3 attributes: value_set stores these as Double
                # and Keyword (common/temporal.py).
                SearchAttr.SKIPPED_NODES.value_set(progress.skipped_nodes),
                SearchAttr.WARM_NODES.value_set(progress.already_warm_nodes),
                SearchAttr.CURRENT_BATCH.value_set(progress.current_batch),
                SearchAttr.TOTAL_BATCHES.value_set(progress.total_batches),
            ]
        )

    def _set_web_ui_details(self) -> None:
        """Current details for the Temporal Web UI: the images, node count and progress."""
        spec, progress = self._input.spec, self._state.progress
        images = ", ".join(spec.images[:5]) + (
            f" (+{len(spec.images) - 5})" if len(spec.images) > 5 else ""
        )
        workflow.set_current_details(
            f"**{self._state.status.value}** · {images} · {progress.total_nodes} nodes · "
            f"batch {progress.current_batch}/{progress.total_batches} · "
            f"{progress.completed_nodes} completed, "
            f"{progress.failed_nodes} failed, {progress.already_warm_nodes} warm, "
            f"{progress.skipped_nodes} skipped"
        )

    def _completion_message(self) -> str:
        progress = self._state.progress
        return (
            f"{progress.completed_nodes} nodes prewarmed, "
            f"{progress.already_warm_nodes} already warm, "
            f"{progress.failed_nodes} failed, {progress.skipped_nodes} skipped"
        )

    def _view(self) -> TaskView:
        state, spec = self._state, self._input.spec
        return TaskView(
            task_id=self._input.task_id,
            status=state.status,
            images=list(spec.images),
            batch_size=spec.batch_size,
            node_selector=dict(spec.node_selector),
            node_names=list(spec.node_names[:NODE_NAMES_SHOWN])
            if spec.node_names is not None
            else None,
            image_pull_policy=spec.image_pull_policy,
            strategy=spec.strategy,
            timeout_seconds=spec.timeout_seconds,
            max_failure_ratio=spec.max_failure_ratio,
            progress=state.progress.model_copy(),
            failed_node_details=list(state.failed_node_details),
            skipped_node_details=list(state.skipped_node_details),
            created_at=self._input.created_at,
            started_at=state.started_at,
            finished_at=state.finished_at,
            message=state.message,
        )

    def _log(self, message: str) -> None:
        workflow.logger.info(message, extra={"taskId": self._input.task_id})


_RETRY_NOTES = {
    RetryState.MAXIMUM_ATTEMPTS_REACHED: "maximum attempts reached",
    RetryState.TIMEOUT: "retries timed out",
}


def _spec_for_next_run(spec: Any) -> Any:
    """The spec a continued run carries: the listing is done, so only the echoed nodeNames."""
    if spec.node_names is None or len(spec.node_names) <= NODE_NAMES_SHOWN:
        return spec
    return spec.model_copy(update={"node_names": spec.node_names[:NODE_NAMES_SHOWN]})


def _detail_size(node: str, image: str | None, message: str) -> int:
    return len(node) + len(image or "") + len(message) + _DETAIL_OVERHEAD


def _selector(spec: Any) -> str:
    if not spec.node_selector:
        return "any node (empty nodeSelector)"
    return "nodeSelector " + ",".join(f"{k}={v}" for k, v in sorted(spec.node_selector.items()))


def _failure_reason(err: BaseException) -> str:
    """A one-line reason for `message`, from the innermost Temporal failure."""
    step = ""
    if isinstance(err, ActivityError):
        step = {
            ACTIVITY_LIST_NODES: "listing nodes",
            ACTIVITY_PREWARM_NODES: "prewarming a batch",
            ACTIVITY_CLEANUP: "cleaning up",
        }.get(err.activity_type, err.activity_type)
    cause: BaseException | None = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError):
        detail = cause.message
    elif isinstance(cause, TemporalTimeoutError):
        detail = f"activity timed out ({cause.type.name if cause.type else 'timeout'})"
    else:
        detail = str(cause or err)
    retry = ""
    if isinstance(err, ActivityError) and err.retry_state in _RETRY_NOTES:
        retry = f" [{_RETRY_NOTES[err.retry_state]}]"
    return trim(f"{step} failed: {detail}{retry}" if step else detail)
