"""Schedules (/api/v1/schedules): a task body plus when it runs, on a Temporal Schedule.

The wire models only (the launcher workflow's input and result are engine types:
common/engine.py). Like common/models/, the `ips_client` distribution ships a committed copy
of this very file (`make client-models`), so it imports only pydantic, the standard library
and `.models`. The cron checks (croniter) are the API's: api/schedules.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field, field_validator, model_validator

from .models import TaskSpec, TaskStatus, UtcDatetime, WireModel

SCHEDULE_ID_RE = re.compile(r"sched-[0-9a-f]{12}")
_DURATION_RE = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


class Overlap(StrEnum):
    """What a run that comes due while the previous one still runs does."""

    SKIP = "skip"  # it is skipped
    BUFFER_ONE = "buffer_one"  # it waits for the previous one (at most one waits)
    CANCEL_OLDER = "cancel_older"  # the previous run is cancelled, then it starts


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `1h30m`, `2h`: a positive whole number of seconds."""
    match = _DURATION_RE.fullmatch(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 90s, 15m or 1h30m")
    h, m, s = (int(g or 0) for g in match.groups())
    return timedelta(hours=h, minutes=m, seconds=s)


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v) or "0s"


def check_timezone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{tz!r} is not a known IANA time zone (e.g. UTC, Europe/Paris)") from None
    return tz


class ScheduleWhen(WireModel):
    """When a schedule runs: exactly one of `cron` and `every`."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = Field(
        default=None,
        max_length=200,
        description="A 5-field cron expression (minute hour day month weekday), or @hourly...",
        examples=["0 */6 * * *"],
    )
    every: str | None = Field(
        default=None, max_length=20, description="An interval: 15m, 1h, 1h30m.", examples=["1h"]
    )
    timezone: str = Field(default="UTC", max_length=64, description="IANA name, for `cron`.")
    jitter: str | None = Field(
        default=None, max_length=20, description="Random delay up to this, per run: 30s, 5m."
    )
    overlap: Overlap = Field(
        default=Overlap.SKIP, description="skip, buffer_one or cancel_older (the running run)."
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)

    @field_validator("every", "jitter")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is None:
            return None
        return format_duration(parse_duration(v))

    @model_validator(mode="after")
    def _one_of(self) -> ScheduleWhen:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of cron and every")
        return self


class ScheduleCreate(ScheduleWhen):
    """POST /api/v1/schedules."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "task": {"images": ["nginx:1.27"], "batchSize": 10},
                    "cron": "0 */6 * * *",
                    "timezone": "Europe/Paris",
                    "jitter": "2m",
                    "overlap": "skip",
                }
            ]
        },
    )

    task: TaskSpec
    paused: bool = False
    note: str | None = Field(default=None, max_length=500)


class SchedulePatch(WireModel):
    """PATCH /api/v1/schedules/{id}: pause, resume, or change any part (the rest is kept)."""

    model_config = ConfigDict(extra="forbid")

    paused: bool | None = None
    note: str | None = Field(default=None, max_length=500)
    task: TaskSpec | None = None
    cron: str | None = Field(default=None, max_length=200)
    every: str | None = Field(default=None, max_length=20)
    timezone: str | None = Field(default=None, max_length=64)
    jitter: str | None = Field(default=None, max_length=20)
    overlap: Overlap | None = None


class ScheduleRun(WireModel):
    task_id: str
    status: TaskStatus
    created_at: UtcDatetime


class ScheduleView(ScheduleWhen):
    """GET /api/v1/schedules/{id}."""

    model_config = ConfigDict(extra="ignore")

    schedule_id: str
    task: TaskSpec
    paused: bool
    note: str | None = None
    created_at: UtcDatetime | None = None
    next_runs: list[UtcDatetime] = Field(default_factory=list, description="The next 5.")
    last_runs: list[ScheduleRun] = Field(default_factory=list, description="Newest first.")
    total_runs: int = 0


class ScheduleSummary(WireModel):
    schedule_id: str
    images: list[str]
    cron: str | None = None
    every: str | None = None
    timezone: str = "UTC"
    paused: bool
    next_run: UtcDatetime | None = None


class ScheduleList(WireModel):
    schedules: list[ScheduleSummary]
    total: int
    limit: int
    offset: int


class ScheduleCreated(WireModel):
    schedule_id: str
    paused: bool
    next_runs: list[UtcDatetime] = Field(default_factory=list)


class TriggerResult(WireModel):
    schedule_id: str
    message: str


def now_utc() -> datetime:
    return datetime.now(UTC)
