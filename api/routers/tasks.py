"""`/api/v1/tasks`: create, get, list and cancel prewarm tasks (the original contract)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse

from api.deps import Reader, SettingsDep, Store, Writer
from api.openapi_errors import ConflictBody, error_responses
from api.policy import check_policy
from common.models import CancelResult, TaskCreated, TaskList, TaskSpec, TaskStatus, TaskView
from common.observability import TASKS_STARTED

PREFIX = "/api/v1/tasks"

router = APIRouter(
    prefix=PREFIX,
    tags=["tasks"],
    responses=error_responses(
        HTTPStatus.UNAUTHORIZED,
        HTTPStatus.FORBIDDEN,
        HTTPStatus.BAD_GATEWAY,
        HTTPStatus.SERVICE_UNAVAILABLE,
    ),
)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[!-~]([ -~]*[!-~])?$",
        description=(
            "Makes retries safe: the same key with the same body returns the same task (200) "
            "and never starts a second one; the same key with another body is a 409. "
            "1-255 printable ASCII characters."
        ),
        examples=["deploy-2026-01-16-nginx"],
    ),
]
TaskId = Annotated[
    str,
    Path(
        description="Task ID, `task-YYYYMMDD-HHMMSS-<8 hex>`.",
        examples=["task-20260116-151234-a1b2c3d4"],
    ),
]


@router.post(
    "",
    status_code=HTTPStatus.CREATED,
    response_model=TaskCreated,
    summary="Create a prewarm task",
    response_description="Task created (status pending); `Location` names it.",
    responses={
        HTTPStatus.OK: {
            "model": TaskCreated,
            "description": "A retry with the same Idempotency-Key and body: the same task.",
        },
        **error_responses(
            HTTPStatus.BAD_REQUEST,
            HTTPStatus.CONFLICT,
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            HTTPStatus.TOO_MANY_REQUESTS,
        ),
    },
)
async def create_task(
    spec: TaskSpec,
    caller: Writer,
    settings: SettingsDep,
    store: Store,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> TaskCreated:
    """Start one durable prewarm workflow; the task ID is its workflow ID.

    403 when the operator's policy forbids the request (the rule is named); 429 with
    Retry-After when IPS_MAX_RUNNING_TASKS tasks are running."""
    check_policy(spec, settings)
    outcome = await store.create(spec, idempotency_key, caller)
    response.headers["Location"] = f"{PREFIX}/{outcome.task.task_id}"
    if outcome.created:
        TASKS_STARTED.inc()
    else:
        response.status_code = HTTPStatus.OK
    return outcome.task


@router.get(
    "",
    response_model=TaskList,
    response_model_exclude_none=True,  # `scheduleId` only on a schedule's runs
    summary="List tasks, newest first",
    responses=error_responses(HTTPStatus.BAD_REQUEST),
)
async def list_tasks(
    _caller: Reader,
    store: Store,
    response: Response,
    status: Annotated[TaskStatus | None, Query(description="Only tasks in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size (1-100).")] = 10,
    offset: Annotated[int, Query(ge=0, le=10_000, description="Tasks to skip (0-10000).")] = 0,
    schedule_id: Annotated[
        str | None,
        Query(
            alias="scheduleId",
            pattern=r"^sched-[0-9a-f]{12}$",
            description="Only the runs of this schedule.",
        ),
    ] = None,
) -> TaskList:
    """From Temporal visibility alone (search attributes and memo): no worker is asked.

    Identical concurrent lists share one lookup, and a page is reused for
    TASK_VIEW_CACHE_SECONDS (`Age`, `Cache-Status` say so)."""
    shared = await store.read_list(status, limit, offset, schedule_id=schedule_id)
    response.headers.update(shared.headers())
    return shared.value


@router.get(
    "/{task_id}",
    response_model=TaskView,
    response_model_exclude_none=True,
    summary="Get a task with its progress",
    responses=error_responses(HTTPStatus.NOT_FOUND),
)
async def get_task(task_id: TaskId, _caller: Reader, store: Store, response: Response) -> TaskView:
    """Live progress from the workflow (bounded to 2 s); the last recorded state otherwise.

    Concurrent GETs of one task share one lookup, and a running task's view is reused for
    TASK_VIEW_CACHE_SECONDS (`Age`, `Cache-Status` say so); a DELETE through this API
    process drops it at once."""
    shared = await store.read(task_id)
    response.headers.update(shared.headers())
    return shared.value


@router.delete(
    "/{task_id}",
    response_model=CancelResult,
    summary="Cancel a task",
    response_description="The workflow confirmed the cancel within 5 s.",
    responses={
        HTTPStatus.ACCEPTED: {
            "model": CancelResult,
            "description": "Cancel requested, not yet confirmed after 5 s (status cancelling).",
        },
        HTTPStatus.CONFLICT: {
            "model": ConflictBody,
            "description": "The task had already finished; `status` is its final status.",
        },
        **error_responses(HTTPStatus.NOT_FOUND),
    },
)
async def cancel_task(task_id: TaskId, caller: Writer, store: Store) -> Any:
    """A Temporal cancel: the current batch's Jobs are cleaned up and progress is frozen.

    A write token cancels the tasks it created; an admin token cancels any task."""
    outcome = await store.cancel(task_id, caller)
    if outcome.confirmed:
        return CancelResult(
            task_id=task_id, status="cancelled", message="Task cancelled successfully"
        )
    body = CancelResult(
        task_id=task_id,
        status="cancelling",
        message="Cancel requested; the task has not confirmed yet (poll GET for its status)",
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=HTTPStatus.ACCEPTED)
