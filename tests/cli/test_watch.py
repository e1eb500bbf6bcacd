"""`ips watch` (and `create --watch`) against a scripted fake API: plain lines off a TTY, the
live view on one, the ETA, exit codes by outcome, Ctrl-C, the follow phase.

The same commands against the real stack (and `watch` on a real TTY) are in tests/cli/test_stack.py.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import cli.tasks
import cli.watch
from cli.exit_codes import Exit
from cli.render import progress_bar
from cli.watch import RateEstimator, follow
from tests.cli.conftest import FakeAPI, run, task

pytestmark = pytest.mark.unit


def test_eta_comes_from_the_observed_rate() -> None:
    est = RateEstimator(window=60)
    assert est.eta(100) is None  # no rate yet
    est.add(0.0, 0)
    est.add(10.0, 20)  # 2 nodes/s
    assert est.rate() == pytest.approx(2.0)
    assert est.eta(100) == pytest.approx(50.0)
    est.add(100.0, 20)  # stalled for 90 s: the window forgets the old burst
    est.add(101.0, 20)
    assert est.eta(100) is None
    assert est.eta(0) == 0.0


@pytest.mark.parametrize(
    ("final", "code"),
    [
        (task("completed", completed=4), Exit.OK),
        (task("completed", completed=3, failed=["node-5"]), Exit.COMPLETED_WITH_FAILURES),
        ({**task("failed", completed=1), "message": "failure ratio exceeded"}, Exit.TASK_FAILED),
        (task("cancelled", completed=1), Exit.TASK_CANCELLED),
    ],
)
def test_watch_off_a_tty_prints_plain_lines_and_exits_by_outcome(
    fake: list[FakeAPI], final: dict[str, Any], code: Exit
) -> None:
    fake.append(
        FakeAPI(
            task("pending"),
            task("running", completed=1),
            httpx.Response(503, json={"error": "temporal unavailable", "details": "restart"}),
            task("running", completed=1, failed=["node-5"] if final["failedNodeDetails"] else []),
            final,
        )
    )
    out = run("watch", "task-20260116-151234-a1b2c3d4")
    assert out.exit_code == code, out.output
    lines = out.stdout.splitlines()
    assert "\x1b" not in out.stdout and "\r" not in out.stdout
    assert any("running" in ln and "1/4 nodes" in ln and "batch 1/2" in ln for ln in lines)
    assert any("API unavailable" in ln for ln in lines)
    fails = [ln for ln in lines if "failed node node-5" in ln]
    assert len(fails) == (1 if final["failedNodeDetails"] else 0)  # each failure once
    assert final["status"] in lines[-1].lower() and "task-20260116-151234-a1b2c3d4" in lines[-1]
    assert all(r.method == "GET" for r in fake[0].requests)


def test_ctrl_c_stops_watching_and_never_cancels(fake: list[FakeAPI]) -> None:
    def interrupt(request: httpx.Request) -> httpx.Response:
        raise KeyboardInterrupt

    api = FakeAPI(task("running", completed=1))
    fake.append(api)
    answers = [interrupt]

    def handler(request: httpx.Request) -> httpx.Response:
        if api.requests:  # second poll: the user presses Ctrl-C
            api.requests.append(request)
            return answers[0](request)
        return api(request)

    fake[0] = handler  # type: ignore[call-overload]
    out = run("watch", "task-20260116-151234-a1b2c3d4")
    assert out.exit_code == Exit.INTERRUPTED
    assert "keeps running" in out.stderr
    assert [r.method for r in api.requests] == ["GET", "GET"]


def test_create_watch_follows_to_the_end(fake: list[FakeAPI]) -> None:
    created = {k: task("pending")[k] for k in ("taskId", "status", "images", "batchSize")}
    fake.append(
        FakeAPI(
            httpx.Response(201, json={**created, "createdAt": "2026-01-16T15:12:34Z"}),
            task("running", completed=2),
            task("completed", completed=3, failed=["node-5"]),
        )
    )
    out = run("create", "-i", "nginx:latest", "-b", "2", "--watch")
    assert out.exit_code == Exit.COMPLETED_WITH_FAILURES
    assert out.stdout.splitlines()[0] == "task-20260116-151234-a1b2c3d4"


def test_outage_shows_in_the_live_view_on_a_terminal(fake: list[FakeAPI]) -> None:
    """On a TTY the live view says the API is unavailable, then recovers, then ends."""
    import io

    from rich.console import Console

    fake.append(
        FakeAPI(
            task("running", completed=1),
            httpx.Response(503, json={"error": "temporal unavailable", "details": "restart"}),
            task("completed", completed=4),
        )
    )
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system="truecolor")
    with cli.tasks._client(None, None) as client:
        code = follow(client, "task-1", interval=1, give_up_after=60, console=console)
    assert code == Exit.OK
    screen = buf.getvalue()
    assert "API unavailable for" in screen and "temporal unavailable" in screen
    assert "━" in screen and "batch 1/2" in screen
    assert "task task-20260116-151234-a1b2c3d4 completed: 4/4 nodes" in screen


def test_watch_redraws_at_most_once_a_second(
    fake: list[FakeAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One poll and one redraw per interval; an interval under a second is refused."""
    fake.append(FakeAPI(task("running", completed=1), task("running", completed=2),
                        task("completed", completed=4)))  # fmt: skip
    slept: list[float] = []
    monkeypatch.setattr(cli.watch.time, "sleep", slept.append)
    out = run("watch", "task-1")
    assert out.exit_code == Exit.OK
    assert len(slept) == 2 and all(0.9 < s <= 1.0 for s in slept), slept
    assert len(fake[0].requests) == 3
    out = run("watch", "task-1", "--interval", "0.2")
    assert out.exit_code == 2 and "--interval" in out.output


def test_a_task_nobody_picks_up_gets_a_hint_once(
    fake: list[FakeAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(cli.watch.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(cli.watch.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    fake.append(FakeAPI(*[task("pending")] * 40, task("completed", completed=4)))
    out = run("watch", "task-1")
    assert out.exit_code == Exit.OK
    hints = [ln for ln in out.stdout.splitlines() if "still pending after 0:00:30" in ln]
    assert len(hints) == 1 and "ips worker" in hints[0]


def test_no_color_terminal_gets_an_ascii_bar() -> None:
    import io

    from ips_client import TaskView
    from rich.console import Console

    view = TaskView.model_validate(task("running", completed=2))
    console = Console(file=io.StringIO(), force_terminal=True, no_color=True, width=80)
    console.print(progress_bar(console, view, 12))
    assert "[#####-----]" in console.file.getvalue()  # type: ignore[attr-defined]


def following(status: str = "running", added: int = 2, completed: int = 5) -> dict[str, Any]:
    body = task(status, completed=completed)
    body["progress"].update(totalNodes=6, totalBatches=3, currentBatch=3)
    body["follow"] = {}
    body["following"] = {"since": "2026-01-16T15:20:02Z", "nodesAdded": added}
    if status == "running":
        body["phase"] = "following"
    return body


def test_watch_and_get_show_the_follow_phase(fake: list[FakeAPI]) -> None:
    fake.append(FakeAPI(following(), following(completed=6), following("cancelled", completed=6)))
    out = run("watch", "task-20260116-151234-a1b2c3d4")
    lines = out.stdout.splitlines()
    assert any(
        "running (following since 15:20:02Z, 2 nodes added)" in ln and "5/6 nodes" in ln
        and "ETA" not in ln
        for ln in lines
    ), lines  # fmt: skip
    assert "2 joined while following" in lines[-1]
    fake[0] = FakeAPI(following())
    out = run("get", "task-20260116-151234-a1b2c3d4")
    for needle in ("following since 15:20:02Z, 2 nodes added", "until cancelled"):
        assert needle in out.stdout, needle
