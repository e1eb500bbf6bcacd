"""GET /api/v1/tasks: newest first, from Temporal visibility alone (count + list), never a
per-task query or a worker. Also the visibility queries other checks count with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.client import Client, WorkflowExecution

from api.tasks.recorded_state import (
    STATUS_CLAUSES,
    derive_status,
    progress_from_sa,
    task_from_memo,
)
from api.tasks.rpc import RPC_TIMEOUT, temporal_errors
from common.models import ProgressSummary, TaskList, TaskStatus, TaskSummary, utcnow
from common.temporal import WORKFLOW_NAME, SearchAttr

LIST_PAGE_SIZE = 1000
# Below this many matching tasks, a list fetches them all and sorts them; above, it narrows to a
# recent StartTime window that holds at least offset + limit of them (see `list_tasks`).
LIST_FETCH_ALL_BELOW = 300
LIST_FIRST_WINDOW = timedelta(minutes=10)
LIST_WINDOW_GROWTH = 4
LIST_MAX_WINDOW = timedelta(days=3650)


def quote_literal(value: str) -> str:
    """A visibility-query string literal; our values never legitimately hold quotes."""
    if "'" in value or "\\" in value:
        raise ValueError(f"{value!r} cannot be used in a visibility query")
    return f"'{value}'"


def _datetime_literal(moment: datetime) -> str:
    return quote_literal(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def tasks_query(task_queue: str, status: TaskStatus | None, schedule_id: str | None = None) -> str:
    """The visibility query for this deployment's tasks, optionally in one status, optionally
    only the runs of one schedule (api/schedules.py)."""
    query = (
        f"WorkflowType = {quote_literal(WORKFLOW_NAME)} AND TaskQueue = {quote_literal(task_queue)}"
    )
    if schedule_id is not None:
        query += f" AND {SearchAttr.SCHEDULE_ID} = {quote_literal(schedule_id)}"
    if status is None:
        return f"{query} AND ExecutionStatus != 'ContinuedAsNew'"
    return f"{query} AND {STATUS_CLAUSES[status]}"


async def count_tasks(client: Client, query: str) -> int:
    async with temporal_errors("counting tasks"):
        return (await client.count_workflows(query, rpc_timeout=RPC_TIMEOUT)).count


async def list_tasks(
    client: Client,
    task_queue: str,
    status: TaskStatus | None,
    limit: int,
    offset: int,
    schedule_id: str | None = None,
) -> TaskList:
    """Newest first from visibility alone.

    SQL visibility cannot ORDER BY and returns open runs before closed ones (by close
    time), so the API sorts by start time itself. To keep that cheap it first finds, with
    count queries, a recent StartTime window holding at least offset + limit tasks, then
    fetches only that window.
    """
    query = tasks_query(task_queue, status, schedule_id)
    total = await count_tasks(client, query)
    if offset >= total:
        return TaskList(tasks=[], total=total, limit=limit, offset=offset)
    needed = offset + limit
    window_query = query
    if total > LIST_FETCH_ALL_BELOW:
        now = utcnow()
        span = LIST_FIRST_WINDOW
        while span < LIST_MAX_WINDOW:
            candidate = f"{query} AND StartTime >= {_datetime_literal(now - span)}"
            in_window = await count_tasks(client, candidate)
            if in_window >= needed:
                window_query = candidate
                break
            if in_window >= total:
                break
            span *= LIST_WINDOW_GROWTH
    executions: list[WorkflowExecution] = []
    async with temporal_errors("listing tasks"):
        async for execution in client.list_workflows(
            window_query, page_size=LIST_PAGE_SIZE, rpc_timeout=RPC_TIMEOUT
        ):
            executions.append(execution)
    executions.sort(key=lambda execution: (execution.start_time, execution.id), reverse=True)
    page = executions[offset : offset + limit]
    items = [await list_item(execution) for execution in page]
    return TaskList(tasks=items, total=total, limit=limit, offset=offset)


async def list_item(execution: WorkflowExecution) -> TaskSummary:
    """One task of the list, from its search attributes and memo."""
    attributes = execution.typed_search_attributes
    memo = await task_from_memo(execution)
    progress = progress_from_sa(attributes)
    return TaskSummary(
        task_id=execution.id,
        status=derive_status(execution.status, attributes),
        images=memo.images if memo else [],
        progress=ProgressSummary(
            total_nodes=progress.total_nodes,
            completed_nodes=progress.completed_nodes,
            percentage=progress.percentage,
        ),
        created_at=memo.created_at if memo else execution.start_time,
        schedule_id=attributes.get(SearchAttr.SCHEDULE_ID.key),
    )
