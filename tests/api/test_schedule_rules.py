"""Schedule timing rules and wire models, without any server."""

from __future__ import annotations

from datetime import timedelta

import pydantic
import pytest

from api.errors import BadRequest
from api.schedule_rules import check_interval, cron_min_gap, interval_problem
from common.schedule_models import (
    ScheduleCreate,
    ScheduleWhen,
    format_duration,
    parse_duration,
)
from common.settings import Settings
from workflows.launcher import launcher_task_id

pytestmark = pytest.mark.unit

FIVE_MIN = timedelta(minutes=5)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("1h30m", 5400), ("2h", 7200)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(parse_duration(text))).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "soon", "5", "1d", "-5m", "m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_cron_gaps() -> None:
    assert cron_min_gap("0 */6 * * *", "UTC") == timedelta(hours=6)
    assert cron_min_gap("*/2 * * * *", "Europe/Paris") == timedelta(minutes=2)
    assert cron_min_gap("@daily", "UTC") == timedelta(days=1)
    with pytest.raises(ValueError, match="not a valid cron"):
        cron_min_gap("61 * * * *", "UTC")


def test_interval_rules_name_the_field() -> None:
    assert interval_problem(ScheduleWhen(every="5m"), FIVE_MIN) is None
    assert interval_problem(ScheduleWhen(every="4m"), FIVE_MIN) == ("every", "must be at least 5m")
    field, rule = interval_problem(ScheduleWhen(cron="* * * * *"), FIVE_MIN) or ("", "")
    assert field == "cron" and "1m apart" in rule
    assert interval_problem(ScheduleWhen(cron="0 3 * * *", timezone="Asia/Tokyo"), FIVE_MIN) is None
    with pytest.raises(BadRequest, match=r"^every: must be at least 10m"):
        check_interval(ScheduleWhen(every="9m"), Settings(ips_schedule_min_interval_seconds=600))


def test_models_reject_what_temporal_would() -> None:
    task = {"images": ["nginx:1.27"], "batchSize": 2}
    with pytest.raises(pydantic.ValidationError, match="exactly one of cron and every"):
        ScheduleCreate.model_validate({"task": task})
    with pytest.raises(pydantic.ValidationError, match="not a known IANA time zone"):
        ScheduleCreate.model_validate({"task": task, "every": "1h", "timezone": "Mars/Base"})
    with pytest.raises(pydantic.ValidationError, match="overlap"):
        ScheduleCreate.model_validate({"task": task, "every": "1h", "overlap": "whenever"})
    ok = ScheduleCreate.model_validate({"task": task, "every": "90m", "jitter": "60s"})
    assert (ok.every, ok.jitter) == ("1h30m", "1m")


def test_launcher_task_ids_have_the_seed_format_and_differ_per_run() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 2, 6, 0, 0, tzinfo=UTC)
    a = launcher_task_id("sched-0a1b2c3d4e5f-2026-12-02T06:00:00Z", now)
    b = launcher_task_id("sched-0a1b2c3d4e5f-2026-12-02T12:00:00Z", now)
    assert a.startswith("task-20261202-060000-") and len(a) == len("task-20261202-060000-") + 8
    assert a != b
    assert a == launcher_task_id("sched-0a1b2c3d4e5f-2026-12-02T06:00:00Z", now)  # replay


def test_two_runs_of_one_launcher_id_in_one_second_get_two_task_ids() -> None:
    """Two triggers within a second: Temporal starts two launcher runs of one workflow ID
    (the trigger time to the second), which may start in the same second (issue 15)."""
    from datetime import UTC, datetime

    now = datetime(2026, 12, 2, 8, 23, 23, tzinfo=UTC)
    wf = "sched-5c1d7981a982-2026-12-02T08:23:23Z"
    first = launcher_task_id(wf, now, "01a235d9-e9b0-7dbe-9dd3-5cf43d6f4bf3")
    second = launcher_task_id(wf, now, "01a235d9-ec47-7e49-b3ec-2ba914748041")
    assert first != second
    assert first == launcher_task_id(wf, now, "01a235d9-e9b0-7dbe-9dd3-5cf43d6f4bf3")  # replay
