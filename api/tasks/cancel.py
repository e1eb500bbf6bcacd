"""DELETE /api/v1/tasks/{id}: a Temporal cancel, then up to 5 s waiting for the close event."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import NoReturn

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError

from api.auth import Principal
from api.errors import Conflict, TemporalError
from api.tasks.guards import check_owner
from api.tasks.history import wait_close_event
from api.tasks.rpc import RPC_TIMEOUT, find_task_workflow, is_not_found, temporal_errors
from api.tasks.views import closed_view
from common.models import TaskStatus

log = logging.getLogger(__name__)

CANCEL_WAIT_SECONDS = 5.0


@dataclass
class CancelOutcome:
    task_id: str
    status: TaskStatus | None  # None: cancel requested, not confirmed yet

    @property
    def confirmed(self) -> bool:
        return self.status == TaskStatus.CANCELLED


async def _already_finished(client: Client, desc: WorkflowExecution) -> NoReturn:
    final = await closed_view(client, desc)
    raise Conflict(
        f"task already finished with status {final.status.value}; nothing to cancel",
        task_id=desc.id,
        status=final.status,
    )


async def cancel_task(
    client: Client, task_queue: str, task_id: str, caller: Principal
) -> CancelOutcome:
    """Request a cancel and wait up to 5 s for the workflow to confirm by closing."""
    desc = await find_task_workflow(client, task_queue, task_id)
    await check_owner(desc, caller)
    if desc.status != WorkflowExecutionStatus.RUNNING:
        await _already_finished(client, desc)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CANCEL_WAIT_SECONDS
    current: WorkflowExecution = desc
    while True:
        try:
            async with temporal_errors("cancelling the task"):
                await client.get_workflow_handle(task_id, run_id=current.run_id).cancel(
                    rpc_timeout=RPC_TIMEOUT
                )
        except TemporalError as err:
            if is_not_found(err):  # it closed between the describe and the cancel
                await _already_finished(
                    client, await find_task_workflow(client, task_queue, task_id)
                )
            raise
        log.info("cancel requested", extra={"taskId": task_id})
        try:
            async with asyncio.timeout_at(deadline):
                event = await wait_close_event(client, current)
        except TimeoutError:
            return CancelOutcome(task_id, None)
        except RPCError as err:
            log.warning("waiting for the cancel: %s", err, extra={"taskId": task_id})
            return CancelOutcome(task_id, None)
        if event is not None and event.HasField(
            "workflow_execution_continued_as_new_event_attributes"
        ):
            current = await find_task_workflow(client, task_queue, task_id)  # the next run
            if current.status != WorkflowExecutionStatus.RUNNING or loop.time() >= deadline:
                return CancelOutcome(task_id, None)
            continue
        async with temporal_errors("reading the task after cancel"):
            closed = await find_task_workflow(client, task_queue, task_id)
        final = await closed_view(client, closed, event)
        if final.status != TaskStatus.CANCELLED:
            raise Conflict(
                f"task finished with status {final.status.value} before the cancel took "
                "effect; nothing to cancel",
                task_id=task_id,
                status=final.status,
            )
        return CancelOutcome(task_id, TaskStatus.CANCELLED)
