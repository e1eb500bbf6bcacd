"""Talking to Temporal: its RPC failures as API errors, and finding a task's workflow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio.client import Client, WorkflowExecutionDescription
from temporalio.service import RPCError, RPCStatusCode

from api.errors import TaskNotFound, TemporalError, TemporalUnavailable
from api.tasks.ids import check_task_id
from common.temporal import WORKFLOW_NAME

RPC_TIMEOUT = timedelta(seconds=5)

_UNAVAILABLE = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.CANCELLED,
}


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


def is_not_found(err: TemporalError) -> bool:
    """A TemporalError raised for Temporal's NOT_FOUND (by `temporal_errors`)."""
    cause = err.__cause__
    return isinstance(cause, RPCError) and cause.status == RPCStatusCode.NOT_FOUND


async def find_task_workflow(
    client: Client, task_queue: str, task_id: str
) -> WorkflowExecutionDescription:
    """The latest run of the task's workflow, as Temporal's DescribeWorkflowExecution gives it.

    TaskNotFound (404) for a malformed ID, an unknown workflow, or a workflow that is not a task
    of this deployment (another type or task queue)."""
    check_task_id(task_id)
    try:
        async with temporal_errors("reading the task"):
            desc = await client.get_workflow_handle(task_id).describe(rpc_timeout=RPC_TIMEOUT)
    except TemporalError as err:
        if is_not_found(err):
            raise TaskNotFound(task_id) from None
        raise
    if desc.workflow_type != WORKFLOW_NAME or desc.task_queue != task_queue:
        raise TaskNotFound(task_id)  # not a task of this deployment
    return desc
