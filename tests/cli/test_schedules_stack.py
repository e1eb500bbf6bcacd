"""`ips schedule ...` and the Python client's schedule calls against the real stack (the API,
the worker with the launcher workflow, kubesim, the session's Temporal dev server)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ips_client import ScheduleNotFound, ValidationError

from tests.stack import WARM_IMAGE, Stack, run_stack

pytestmark = pytest.mark.integration

TOKEN = f"sched-token-{uuid.uuid4().hex[:12]}"
SCHEDULE_ID = re.compile(r"^sched-[0-9a-f]{12}$")
TASK_ID = re.compile(r"^task-\d{8}-\d{6}-[0-9a-f]{8}$")


@pytest.fixture(scope="module")
def stack(dev_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with run_stack(dev_address, Path(tmp_path_factory.mktemp("cli-sched")), token=TOKEN) as s:
        yield s


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)
    return value


def ok(stack: Stack, *args: str) -> str:
    result = stack.ips(*args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_schedule_commands(stack: Stack) -> None:
    out = ok(stack, "schedule", "create", "-i", WARM_IMAGE, "-b", "5", "-l", "pool=obs",
             "--every", "2h", "--timezone", "Asia/Tokyo", "--jitter", "1m")  # fmt: skip
    sid = out.strip()
    assert SCHEDULE_ID.match(sid), out

    shown = ok(stack, "schedule", "get", sid)
    assert sid in shown and "every 2h" in shown and "Asia/Tokyo" in shown and "active" in shown
    as_json = json.loads(ok(stack, "schedule", "get", sid, "-o", "json"))
    assert as_json["scheduleId"] == sid and len(as_json["nextRuns"]) == 5
    wait_for("the schedule in the list", lambda: sid in ok(stack, "schedule", "list"))

    assert f"{sid} paused" in ok(stack, "schedule", "pause", sid, "--note", "freeze")
    assert json.loads(ok(stack, "schedule", "get", sid, "-o", "json"))["paused"] is True
    assert "paused" in ok(stack, "schedule", "list")
    assert f"{sid} resumed" in ok(stack, "schedule", "resume", sid)
    assert json.loads(ok(stack, "schedule", "get", sid, "-o", "json"))["paused"] is False

    assert "run requested" in ok(stack, "schedule", "trigger", sid)
    runs = wait_for(
        "the run in ips list --schedule",
        lambda: json.loads(ok(stack, "list", "--schedule", sid, "-o", "json"))["tasks"],
    )
    (run,) = runs
    assert TASK_ID.match(run["taskId"]) and run["scheduleId"] == sid
    # The run is an ordinary task: ips watch follows it to its end (exit 0: completed).
    watched = stack.ips("watch", run["taskId"])
    assert watched.returncode == 0, (watched.stdout, watched.stderr)

    assert "schedule deleted" in ok(stack, "schedule", "delete", sid)
    gone = stack.ips("schedule", "get", sid)
    assert gone.returncode != 0 and "schedule not found" in gone.stderr

    bad = stack.ips("schedule", "create", "-i", WARM_IMAGE, "-b", "1", "--every", "1m")
    assert bad.returncode != 0 and "every:" in bad.stderr


def test_client_schedule_calls(stack: Stack) -> None:
    with stack.client() as ips:
        created = ips.create_schedule(
            images=[WARM_IMAGE], batch_size=5, node_selector={"pool": "obs"}, cron="0 4 * * *"
        )
        sid = created.schedule_id
        assert len(created.next_runs) == 5
        view = ips.get_schedule(sid)
        assert view.cron == "0 4 * * *" and view.every is None and not view.paused
        assert ips.pause_schedule(sid, "hold").paused is True
        assert ips.resume_schedule(sid).paused is False
        changed = ips.update_schedule(sid, every="3h")
        assert changed.every == "3h" and changed.cron is None
        ips.trigger_schedule(sid)
        (run,) = wait_for("the run", lambda: ips.list(schedule_id=sid).tasks)
        final = ips.wait(run.task_id, timeout=90)
        assert final.status.value == "completed" and final.schedule_id == sid
        assert sid in {s.schedule_id for s in wait_for(
            "the listed schedule",
            lambda: [s for s in ips.list_schedules(limit=100).schedules if s.schedule_id == sid],
        )}  # fmt: skip
        ips.delete_schedule(sid)
        with pytest.raises(ScheduleNotFound):
            ips.get_schedule(sid)
        with pytest.raises(ValidationError, match="timezone"):
            ips.create_schedule(images=[WARM_IMAGE], batch_size=1, every="1h", timezone="Nowhere")
