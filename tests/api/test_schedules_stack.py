"""Schedules end to end: the API, the real worker (launcher + prewarm) and kubesim as processes,
on the session's Temporal dev server. Create, bad input, trigger, the run as an ordinary task,
pause/resume, change, and delete with no run left behind.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stack import WARM_IMAGE, Stack, fresh_image, run_stack

pytestmark = pytest.mark.integration

TASK_ID = re.compile(r"^task-\d{8}-\d{6}-[0-9a-f]{8}$")
SCHEDULE_ID = re.compile(r"^sched-[0-9a-f]{12}$")
SCHEDULES = "/api/v1/schedules"
WAIT = 120.0  # generous: the machine is shared; every wait is on a condition


@pytest.fixture(scope="module")
def stack(dev_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with run_stack(dev_address, Path(tmp_path_factory.mktemp("sched"))) as s:
        yield s


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def wait_for(
    what: str, probe: Callable[[], Any], timeout: float = WAIT, interval: float = 0.3
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def runs(http: httpx.Client, sid: str) -> list[dict[str, Any]]:
    r = http.get("/api/v1/tasks", params={"scheduleId": sid, "limit": 100})
    assert r.status_code == 200, r.text
    tasks: list[dict[str, Any]] = r.json()["tasks"]
    return tasks


def temporal(address: str, *args: str) -> dict[str, Any]:
    """A `temporal` CLI command's JSON output (the CLI of the runbook)."""
    out = subprocess.run(
        [
            shutil.which("temporal", path=str(Path(sys.executable).parent)) or "temporal",
            *args,
            "--address",
            address,
            "-o",
            "json",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def body(**extra: Any) -> dict[str, Any]:
    task = {"images": [WARM_IMAGE], "batchSize": 5, "nodeSelector": {"pool": "obs"}}
    return {"task": task, "every": "1h", **extra}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"every": None, "cron": "every day at noon"}, "cron"),
        ({"every": None, "cron": "61 * * * *"}, "cron"),
        ({"every": None, "cron": "*/2 * * * *"}, "cron"),  # every 2 minutes: under 5
        ({"every": "4m59s"}, "every"),
        ({"every": "soon"}, "every"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"jitter": "a bit"}, "jitter"),
        ({"overlap": "sometimes"}, "overlap"),
    ],
)
def test_bad_schedule_is_a_400_naming_the_field(
    http: httpx.Client, extra: dict[str, Any], field: str
) -> None:
    payload = body(**extra)
    payload = {k: v for k, v in payload.items() if v is not None}
    r = http.post(SCHEDULES, json=payload)
    assert r.status_code == 400, r.text
    err = r.json()
    assert set(err) == {"error", "details"}
    assert err["details"].startswith(f"{field}:"), err


def test_cron_and_every_together_is_a_400(http: httpx.Client) -> None:
    r = http.post(SCHEDULES, json=body(cron="0 * * * *"))
    assert r.status_code == 400
    assert "exactly one of cron and every" in r.json()["details"]


def test_unknown_schedule_is_a_404_in_the_envelope(http: httpx.Client) -> None:
    for method, path in [
        ("GET", f"{SCHEDULES}/sched-000000000000"),
        ("PATCH", f"{SCHEDULES}/sched-000000000000"),
        ("POST", f"{SCHEDULES}/sched-000000000000/trigger"),
        ("DELETE", f"{SCHEDULES}/nonsense"),
    ]:
        kwargs: dict[str, Any] = {"json": {"paused": True}} if method == "PATCH" else {}
        r = http.request(method, path, **kwargs)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"] == "schedule not found"


def test_schedule_lifecycle(stack: Stack, http: httpx.Client, dev_address: str) -> None:
    # Create: 201, an ID, the next 5 runs an hour apart.
    r = http.post(SCHEDULES, json=body(timezone="Europe/Paris", jitter="30s"))
    assert r.status_code == 201, r.text
    created = r.json()
    sid = created["scheduleId"]
    assert SCHEDULE_ID.match(sid)
    assert r.headers["Location"] == f"{SCHEDULES}/{sid}"
    assert created["paused"] is False

    view = http.get(f"{SCHEDULES}/{sid}").json()
    assert view["every"] == "1h" and view["cron"] is None
    assert view["timezone"] == "Europe/Paris" and view["jitter"] == "30s"
    assert view["overlap"] == "skip"
    assert view["task"]["images"] == [WARM_IMAGE]
    assert len(view["nextRuns"]) == 5
    assert view["lastRuns"] == [] and view["totalRuns"] == 0

    listed = wait_for(
        "the schedule in the list",
        lambda: [s for s in http.get(SCHEDULES).json()["schedules"] if s["scheduleId"] == sid],
    )
    assert listed[0]["images"] == [WARM_IMAGE] and listed[0]["paused"] is False

    # Trigger: one run, an ordinary task with a task ID in the seed's format.
    r = http.post(f"{SCHEDULES}/{sid}/trigger")
    assert r.status_code == 202, r.text
    (run,) = wait_for("the triggered run", lambda: runs(http, sid))
    assert TASK_ID.match(run["taskId"]), run
    assert run["scheduleId"] == sid
    task = wait_for(
        "the run to complete",
        lambda: (
            (t := http.get(f"/api/v1/tasks/{run['taskId']}").json())["status"] == "completed" and t
        ),
    )
    assert task["scheduleId"] == sid
    assert task["images"] == [WARM_IMAGE]
    view = wait_for(
        "the run in the schedule's last runs",
        lambda: (v := http.get(f"{SCHEDULES}/{sid}").json())["lastRuns"] and v,
    )
    assert view["lastRuns"][0]["taskId"] == run["taskId"]
    assert view["totalRuns"] == 1

    # Pause and resume: Temporal's own state.
    r = http.patch(f"{SCHEDULES}/{sid}", json={"paused": True, "note": "maintenance"})
    assert r.status_code == 200, r.text
    assert r.json()["paused"] is True and r.json()["note"] == "maintenance"
    # ... as `temporal schedule` sees it (the runbook's commands).
    desc = temporal(dev_address, "schedule", "describe", "--schedule-id", sid)
    assert desc["schedule"]["state"]["paused"] is True
    assert desc["schedule"]["action"]["startWorkflow"]["workflowType"]["name"] == (
        "ScheduleLauncherWorkflow"
    )
    r = http.patch(f"{SCHEDULES}/{sid}", json={"paused": False})
    assert r.json()["paused"] is False

    # Change: a cron instead of the interval, and a slow image (the next run lasts).
    slow = {"images": [fresh_image()], "batchSize": 1, "nodeSelector": {"pool": "slow"}}
    r = http.patch(f"{SCHEDULES}/{sid}", json={"cron": "0 3 * * *", "task": slow})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["cron"] == "0 3 * * *" and changed["every"] is None
    assert changed["task"]["images"] == slow["images"]
    assert changed["timezone"] == "Europe/Paris"  # kept
    r = http.patch(f"{SCHEDULES}/{sid}", json={"cron": "*/1 * * * *"})
    assert r.status_code == 400 and r.json()["details"].startswith("cron:")

    r = http.delete(f"{SCHEDULES}/{sid}")
    assert r.status_code == 200, r.text
    assert http.get(f"{SCHEDULES}/{sid}").status_code == 404
    # The run stays readable as a task after the schedule is gone.
    assert {t["taskId"] for t in runs(http, sid)} == {run["taskId"]}


def test_delete_cancels_a_run_still_going(http: httpx.Client, dev_address: str) -> None:
    """A run that is still going when the schedule is deleted is cancelled with it."""
    slow = {"images": [fresh_image()], "batchSize": 1, "nodeSelector": {"pool": "slow"}}
    r = http.post(SCHEDULES, json={"task": slow, "every": "6h"})
    assert r.status_code == 201, r.text
    sid = r.json()["scheduleId"]
    assert http.post(f"{SCHEDULES}/{sid}/trigger").status_code == 202
    second = wait_for(
        "the run to be running",
        lambda: [t for t in runs(http, sid) if t["status"] == "running"],
    )[0]
    r = http.delete(f"{SCHEDULES}/{sid}")
    assert r.status_code == 200, r.text
    assert http.get(f"{SCHEDULES}/{sid}").status_code == 404
    final = wait_for(
        "the run to be cancelled",
        lambda: (
            (t := http.get(f"/api/v1/tasks/{second['taskId']}").json())["status"] == "cancelled"
            and t
        ),
    )
    assert final["scheduleId"] == sid
    query = f"IpsScheduleId = '{sid}' AND ExecutionStatus = 'Running'"
    # JSON omits a zero count.
    assert int(temporal(dev_address, "workflow", "count", "--query", query).get("count", 0)) == 0


def test_trigger_after_a_change_starts_a_run(http: httpx.Client) -> None:
    """Run, change (cron and task), run again: the second trigger starts a second task.

    The bug (issue 15): a trigger's launcher is named after the trigger time to the second,
    and Temporal starts triggered runs with ALLOW_DUPLICATE, so when the first run ended and
    the change and second trigger came within the same second, the second launcher run had the
    first's workflow ID and derived the same task ID: its child was refused as a duplicate and
    no run appeared (about half the time, as fast as the warm run ends). The task ID now
    includes the launcher's run ID."""
    r = http.post(SCHEDULES, json=body(every="6h"))  # warm nodes only: the run ends at once
    assert r.status_code == 201, r.text
    sid = r.json()["scheduleId"]
    try:
        assert http.post(f"{SCHEDULES}/{sid}/trigger").status_code == 202
        # Polled fast, so the change and the second trigger often come within the second of
        # the first trigger, as they did when the bug showed.
        (first,) = wait_for(
            "the first run to complete",
            lambda: [t for t in runs(http, sid) if t["status"] == "completed"],
            interval=0.05,
        )
        slow = {"images": [fresh_image()], "batchSize": 1, "nodeSelector": {"pool": "slow"}}
        r = http.patch(f"{SCHEDULES}/{sid}", json={"cron": "0 3 * * *", "task": slow})
        assert r.status_code == 200, r.text
        assert http.post(f"{SCHEDULES}/{sid}/trigger").status_code == 202
        (second,) = wait_for(
            "a run after the change",
            lambda: [t for t in runs(http, sid) if t["taskId"] != first["taskId"]],
        )
        assert second["images"] == slow["images"]
    finally:
        assert http.delete(f"{SCHEDULES}/{sid}").status_code == 200


def test_a_trigger_while_a_run_goes_runs_after_it(http: httpx.Client) -> None:
    """Under skip, Temporal drops a trigger that finds a run going, even a launcher that is
    only closing after its task ended (issue 15). The API's trigger waits for it instead
    (BUFFER_ALL): accepted, never dropped."""
    slow = {"images": [fresh_image()], "batchSize": 1, "nodeSelector": {"pool": "slow"}}
    r = http.post(SCHEDULES, json={"task": slow, "every": "6h"})  # overlap: skip
    assert r.status_code == 201, r.text
    sid = r.json()["scheduleId"]
    try:
        assert http.post(f"{SCHEDULES}/{sid}/trigger").status_code == 202
        (first,) = wait_for(
            "the first run to be running",
            lambda: [t for t in runs(http, sid) if t["status"] == "running"],
        )
        assert http.post(f"{SCHEDULES}/{sid}/trigger").status_code == 202
        r = http.delete(f"/api/v1/tasks/{first['taskId']}")
        assert r.status_code in (200, 202), r.text
        (second,) = wait_for(
            "the second run, once the first ended",
            lambda: [t for t in runs(http, sid) if t["taskId"] != first["taskId"]],
        )
        assert second["images"] == slow["images"]
    finally:
        assert http.delete(f"{SCHEDULES}/{sid}").status_code == 200


def test_overlap_cancel_older_cancels_the_running_task(http: httpx.Client) -> None:
    """A run due while the previous one runs: with cancel_older, Temporal cancels the older
    launcher, and that cancels its task (which ends `cancelled`, as any cancelled task)."""
    slow = {"images": [fresh_image()], "batchSize": 1, "nodeSelector": {"pool": "slow"}}
    r = http.post(SCHEDULES, json={"task": slow, "every": "6h", "overlap": "cancel_older"})
    assert r.status_code == 201, r.text
    sid = r.json()["scheduleId"]
    try:
        assert http.post(f"{SCHEDULES}/{sid}/trigger").status_code == 202
        first = wait_for(
            "the first run to be running",
            lambda: [t for t in runs(http, sid) if t["status"] == "running"],
        )[0]
        assert http.post(f"{SCHEDULES}/{sid}/trigger").status_code == 202
        wait_for(
            "the first run to be cancelled",
            lambda: http.get(f"/api/v1/tasks/{first['taskId']}").json()["status"] == "cancelled",
        )
        others = wait_for(
            "the second run",
            lambda: [t for t in runs(http, sid) if t["taskId"] != first["taskId"]],
        )
        assert others[0]["status"] in ("pending", "running")
    finally:
        assert http.delete(f"{SCHEDULES}/{sid}").status_code == 200
