"""GET /api/v1/tasks/{id}: a task's `TaskView`, from the best source that answers.

- running: the workflow's `progress` query, bounded to 2 s;
- closed: its close event (the workflow result, or why it failed), which needs no worker;
- otherwise (no worker answered): the last recorded state, from the search attributes, the
  memo and the workflow input.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, timedelta

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.common import QueryRejectCondition
from temporalio.service import RPCError

from api.tasks.history import history_event, read_input
from api.tasks.recorded_state import derive_status, progress_from_sa, task_from_memo
from api.tasks.rpc import find_task_workflow, temporal_errors
from common.models import TaskStatus, TaskView
from common.temporal import QUERY_PROGRESS, SearchAttr

log = logging.getLogger(__name__)

QUERY_TIMEOUT = timedelta(seconds=2)
_CLOSED_MEANWHILE = "closed"  # the query was refused: the task closed after the describe
_CLOSED_FAILED_MESSAGES = {
    WorkflowExecutionStatus.TERMINATED: "task terminated in Temporal (by an operator)",
    WorkflowExecutionStatus.TIMED_OUT: "task timed out in Temporal (workflow execution timeout)",
    WorkflowExecutionStatus.FAILED: "task workflow failed",
}


async def get_task(client: Client, task_queue: str, task_id: str) -> TaskView:
    """Describe and query at once: a running task costs one round trip, not two in a row.

    The describe still decides (unknown, another deployment's task, closed); a query answer
    is used only for a task it confirms running.
    """
    query = asyncio.create_task(_live_view(client, task_id))
    try:
        desc = await find_task_workflow(client, task_queue, task_id)
    except BaseException:
        query.cancel()
        await asyncio.gather(query, return_exceptions=True)
        raise
    if desc.status != WorkflowExecutionStatus.RUNNING:
        query.cancel()
        await asyncio.gather(query, return_exceptions=True)
        return _with_schedule(await closed_view(client, desc), desc)
    live, why = await query
    if live is not None:
        return _with_schedule(live, desc)
    if why == _CLOSED_MEANWHILE:
        closed = await closed_view(client, await find_task_workflow(client, task_queue, task_id))
        return _with_schedule(closed, desc)
    recorded = await recorded_view(
        client, desc, note=f"live progress unavailable: {why}; showing the last recorded counters"
    )
    return _with_schedule(recorded, desc)


def _with_schedule(view: TaskView, desc: WorkflowExecution) -> TaskView:
    """The schedule that started the task, from its IpsScheduleId (none for an API task)."""
    view.schedule_id = desc.typed_search_attributes.get(SearchAttr.SCHEDULE_ID.key)
    return view


async def _live_view(client: Client, task_id: str) -> tuple[TaskView | None, str]:
    """The live view, or None and why not (said to the client in `message`).

    NOT_OPEN: a closed workflow refuses at once, rather than have a worker replay its
    whole history to answer; its result is read instead.
    """
    handle = client.get_workflow_handle(task_id)
    try:
        async with asyncio.timeout(QUERY_TIMEOUT.total_seconds() + 0.5):
            view = await handle.query(
                QUERY_PROGRESS,
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


async def closed_view(
    client: Client, desc: WorkflowExecution, event: HistoryEvent | None = None
) -> TaskView:
    """A closed task from its close event: no worker needed."""
    if event is None:
        async with temporal_errors("reading the task result"):
            event = await history_event(client, desc, close=True)
    if event is not None and event.HasField("workflow_execution_completed_event_attributes"):
        payloads = event.workflow_execution_completed_event_attributes.result.payloads
        try:
            (view,) = await client.data_converter.decode(payloads, [TaskView])
            if isinstance(view, TaskView):
                return view
        except (ValueError, TypeError) as err:
            log.warning("unreadable task result: %s", err, extra={"taskId": desc.id})
        return await recorded_view(client, desc)
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
    return await recorded_view(client, desc, status_override=status, note=message)


async def recorded_view(
    client: Client,
    desc: WorkflowExecution,
    *,
    status_override: WorkflowExecutionStatus | None = None,
    note: str | None = None,
) -> TaskView:
    """The last recorded state: search attributes, memo and the workflow input."""
    attributes = desc.typed_search_attributes
    status = derive_status(status_override or desc.status, attributes)
    memo = await task_from_memo(desc)
    started_with = await read_input(client, desc)
    spec = started_with.spec if started_with is not None else None
    created_at = (
        started_with.created_at if started_with else memo.created_at if memo else desc.start_time
    ).astimezone(UTC)
    state = started_with.state if started_with is not None else None
    started_at = state.started_at if state is not None and state.started_at else None
    if started_at is None and status != TaskStatus.PENDING:
        started_at = desc.start_time
    view = TaskView(
        task_id=desc.id,
        status=status,
        images=spec.images if spec else (memo.images if memo else []),
        batch_size=spec.batch_size if spec else (memo.batch_size if memo else 1),
        node_selector=spec.node_selector if spec else (memo.node_selector if memo else {}),
        progress=progress_from_sa(attributes),
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
        view.pin_digests = spec.pin_digests
        view.pacing = spec.pacing
    if state is not None:
        view.failed_node_details = state.failed_node_details
        view.skipped_node_details = state.skipped_node_details
        view.warnings = state.warnings
    return view
