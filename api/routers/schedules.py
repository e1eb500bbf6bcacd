"""`/api/v1/schedules`: recurring prewarms on Temporal Schedules (api/schedules.py).

Each run is an ordinary task: `GET /api/v1/tasks?scheduleId=...` lists a schedule's runs.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from api.deps import Reader, SettingsDep, TaskReadsDep, Writer
from api.openapi_errors import error_responses
from api.policy import check_policy
from api.schedules import ScheduleStore
from common.schedule_models import (
    ScheduleCreate,
    ScheduleCreated,
    ScheduleList,
    SchedulePatch,
    ScheduleView,
    TriggerResult,
)

PREFIX = "/api/v1/schedules"

router = APIRouter(
    prefix=PREFIX,
    tags=["schedules"],
    responses=error_responses(
        HTTPStatus.UNAUTHORIZED,
        HTTPStatus.FORBIDDEN,
        HTTPStatus.BAD_GATEWAY,
        HTTPStatus.SERVICE_UNAVAILABLE,
    ),
)


async def get_schedule_store(
    request: Request, settings: SettingsDep, reads: TaskReadsDep
) -> ScheduleStore:
    return ScheduleStore(request.app.state.temporal.get, settings, reads)


Schedules = Annotated[ScheduleStore, Depends(get_schedule_store)]
ScheduleId = Annotated[
    str, Path(description="Schedule ID, `sched-<12 hex>`.", examples=["sched-0a1b2c3d4e5f"])
]


@router.post(
    "",
    status_code=HTTPStatus.CREATED,
    response_model=ScheduleCreated,
    summary="Create a schedule (a Temporal Schedule)",
    responses=error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
)
async def create_schedule(
    body: ScheduleCreate,
    caller: Writer,
    settings: SettingsDep,
    schedules: Schedules,
    response: Response,
) -> ScheduleCreated:
    """A task body plus `cron` or `every`, `timezone`, `jitter`, `overlap`, `paused`.

    400 names the field for a bad cron, an unknown time zone, or runs closer than
    IPS_SCHEDULE_MIN_INTERVAL_SECONDS (default 5 minutes)."""
    check_policy(body.task, settings)
    created = await schedules.create(body, caller)
    response.headers["Location"] = f"{PREFIX}/{created.schedule_id}"
    return created


@router.get(
    "",
    response_model=ScheduleList,
    summary="List schedules, newest first",
    responses=error_responses(HTTPStatus.BAD_REQUEST),
)
async def list_schedules(
    _caller: Reader,
    schedules: Schedules,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size (1-100).")] = 10,
    offset: Annotated[int, Query(ge=0, le=10_000, description="Schedules to skip.")] = 0,
) -> ScheduleList:
    return await schedules.list(limit, offset)


@router.get(
    "/{schedule_id}",
    response_model=ScheduleView,
    summary="Get a schedule: its spec, next 5 runs and last runs",
    responses=error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND),
)
async def get_schedule(
    schedule_id: ScheduleId, _caller: Reader, schedules: Schedules
) -> ScheduleView:
    return await schedules.get(schedule_id)


@router.patch(
    "/{schedule_id}",
    response_model=ScheduleView,
    summary="Pause, resume or change a schedule",
    responses=error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND),
)
async def patch_schedule(
    schedule_id: ScheduleId,
    body: SchedulePatch,
    caller: Writer,
    settings: SettingsDep,
    schedules: Schedules,
) -> ScheduleView:
    """`{"paused": true}` pauses, `{"paused": false}` resumes; any other field replaces that
    part of the schedule (giving `cron` drops `every` and the reverse)."""
    if body.task is not None:
        check_policy(body.task, settings)
    return await schedules.patch(schedule_id, body, caller)


@router.post(
    "/{schedule_id}/trigger",
    status_code=HTTPStatus.ACCEPTED,
    response_model=TriggerResult,
    summary="Run a schedule now",
    responses=error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND),
)
async def trigger_schedule(
    schedule_id: ScheduleId, caller: Writer, schedules: Schedules
) -> TriggerResult:
    """One run now, or after the run still going (cancelling it under cancel_older); it shows
    in /api/v1/tasks?scheduleId=..."""
    await schedules.trigger(schedule_id, caller)
    return TriggerResult(schedule_id=schedule_id, message="run requested")


@router.delete(
    "/{schedule_id}",
    response_model=TriggerResult,
    summary="Delete a schedule and cancel its runs still going",
    responses=error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND),
)
async def delete_schedule(
    schedule_id: ScheduleId, caller: Writer, schedules: Schedules
) -> TriggerResult:
    cancelled = await schedules.delete(schedule_id, caller)
    return TriggerResult(
        schedule_id=schedule_id,
        message=f"schedule deleted; {cancelled} running workflow(s) of it cancelled",
    )
