"""The rules of a schedule's timing the API checks before Temporal sees it (400 naming the
field): a cron croniter can read, and runs no closer than IPS_SCHEDULE_MIN_INTERVAL_SECONDS."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from croniter import CroniterBadCronError, croniter

from api.errors import BadRequest
from common.schedule_models import ScheduleWhen, format_duration, parse_duration
from common.settings import Settings

# How many next fire times a cron is checked over for the shortest interval.
CRON_PROBE = 50


def cron_min_gap(expr: str, tz: str) -> timedelta:
    """The shortest gap between two of the next fire times of `expr` (ValueError if invalid)."""
    try:
        it = croniter(expr, datetime.now(ZoneInfo(tz)))
        times = [it.get_next(datetime) for _ in range(CRON_PROBE)]
    except (CroniterBadCronError, ValueError, KeyError) as err:
        raise ValueError(f"{expr!r} is not a valid cron expression ({err})") from None
    return min(b - a for a, b in pairwise(times))


def interval_problem(when: ScheduleWhen, minimum: timedelta) -> tuple[str, str] | None:
    """(field, rule) when runs would come closer than `minimum`, or the cron is invalid."""
    if when.every is not None:
        if parse_duration(when.every) < minimum:
            return "every", f"must be at least {format_duration(minimum)}"
        return None
    assert when.cron is not None
    try:
        gap = cron_min_gap(when.cron, when.timezone)
    except ValueError as err:
        return "cron", str(err)
    if gap < minimum:
        return "cron", (
            f"runs {format_duration(gap)} apart; the shortest allowed interval is "
            f"{format_duration(minimum)}"
        )
    return None


def check_interval(when: ScheduleWhen, settings: Settings) -> None:
    """400 naming the field for a bad cron or runs closer than the configured minimum."""
    minimum = timedelta(seconds=settings.ips_schedule_min_interval_seconds)
    problem = interval_problem(when, minimum)
    if problem is not None:
        field, rule = problem
        raise BadRequest(f"{field}: {rule} (IPS_SCHEDULE_MIN_INTERVAL_SECONDS)")
