"""Single events of a run's history: its first (the workflow input) and its close event."""

from __future__ import annotations

import logging

from temporalio.api.common.v1 import WorkflowExecution as WorkflowExecutionRef
from temporalio.api.enums.v1 import EventType, HistoryEventFilterType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client, WorkflowExecution

from api.errors import TemporalError
from api.tasks.rpc import RPC_TIMEOUT, temporal_errors
from common.engine import PrewarmInput

log = logging.getLogger(__name__)


async def history_event(
    client: Client, run: WorkflowExecution, *, close: bool, wait: bool = False
) -> HistoryEvent | None:
    """The run's first event, or its close event (`close`); `wait` long-polls for it."""
    request = GetWorkflowExecutionHistoryRequest(
        namespace=client.namespace,
        execution=WorkflowExecutionRef(workflow_id=run.id, run_id=run.run_id),
        maximum_page_size=1,
        wait_new_event=wait,
        history_event_filter_type=(
            HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT
            if close
            else HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT
        ),
        skip_archival=True,
    )
    response = await client.workflow_service.get_workflow_execution_history(
        request, retry=not wait, timeout=None if wait else RPC_TIMEOUT
    )
    return response.history.events[0] if response.history.events else None


async def wait_close_event(client: Client, run: WorkflowExecution) -> HistoryEvent:
    """Long-poll the run's close event; the server ends each poll empty after a while."""
    while True:
        event = await history_event(client, run, close=True, wait=True)
        if event is not None:
            return event


async def read_input(client: Client, run: WorkflowExecution) -> PrewarmInput | None:
    """The workflow input (spec, createdAt, carried state) from the run's first event."""
    try:
        async with temporal_errors("reading the task input"):
            event = await history_event(client, run, close=False)
        if event is None or event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            return None
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        (value,) = await client.data_converter.decode(payloads, [PrewarmInput])
        return value if isinstance(value, PrewarmInput) else None
    except (ValueError, TypeError, TemporalError) as err:
        log.warning("unreadable task input: %s", err, extra={"taskId": run.id})
        return None
