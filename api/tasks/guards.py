"""The checks on a write beyond the token's role: the running-task cap on create (429) and
task ownership on cancel (403). docs/security.md describes both."""

from __future__ import annotations

from temporalio.client import Client, WorkflowExecution

from api.auth import Principal, Role
from api.errors import Forbidden, TooManyTasks
from api.tasks.idempotency import is_reserved
from api.tasks.listing import count_tasks, tasks_query
from common.temporal import MEMO_OWNER

RUNNING_CAP_RETRY_AFTER_SECONDS = 30


async def check_running_cap(
    client: Client, task_queue: str, cap: int, key: str | None, caller: Principal
) -> None:
    """429 when `cap` (IPS_MAX_RUNNING_TASKS) tasks run; a retry of a reserved key is never
    refused. 0 turns the cap off.

    Visibility counts lag a little, so the cap is approximate under a burst of creates."""
    if cap <= 0:
        return
    query = f"{tasks_query(task_queue, None)} AND ExecutionStatus = 'Running'"
    if await count_tasks(client, query) < cap:
        return
    if key is not None and await is_reserved(client, task_queue, key, caller):
        return  # a retry of an accepted request: answered as before, never refused
    raise TooManyTasks(
        f"{cap} tasks are running, the most IPS_MAX_RUNNING_TASKS allows; retry later",
        retry_after=RUNNING_CAP_RETRY_AFTER_SECONDS,
    )


async def check_owner(desc: WorkflowExecution, caller: Principal) -> None:
    """A write token cancels only the tasks it created; an admin token any task."""
    if caller.may(Role.ADMIN):
        return
    try:
        owner = (await desc.memo()).get(MEMO_OWNER)
    except Exception:  # an unreadable memo: no proven owner
        owner = None
    if owner != caller.id:
        raise Forbidden(
            "this token did not create the task; only its creator or an admin token may cancel it",
            task_id=desc.id,
        )
