"""The client commands against a scripted fake API: rendering, exit codes, one-line errors.

The same commands against the real stack (and `watch` on a real TTY) are in tests/cli/test_stack.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ips_client import IPSClient
from typer.testing import CliRunner

import cli.tasks
import cli.watch
from cli.exit_codes import Exit
from cli.main import app
from cli.render import progress_bar
from cli.tasks import parse_selector, parse_toleration
from cli.watch import RateEstimator, follow

pytestmark = pytest.mark.unit


def task(
    status: str = "running",
    completed: int = 0,
    failed: list[str] | None = None,
    batch: int = 1,
    warm: int = 0,
) -> dict[str, Any]:
    failed = failed or []
    done = completed + len(failed) + warm
    return {
        "taskId": "task-20260116-151234-a1b2c3d4",
        "status": status,
        "images": ["nginx:latest", "redis:7"],
        "batchSize": 2,
        "nodeSelector": {"workload": "compute"},
        "progress": {
            "totalNodes": 4,
            "completedNodes": completed,
            "failedNodes": len(failed),
            "skippedNodes": 1,
            "alreadyWarmNodes": warm,
            "currentBatch": batch,
            "totalBatches": 2,
            "percentage": 25.0 * done,
        },
        "failedNodeDetails": [
            {
                "nodeName": n,
                "image": "redis:7",
                "reason": "ImagePullBackOff",
                "message": 'Back-off pulling image "redis:7"',
                "timestamp": "2026-01-16T15:15:30Z",
            }
            for n in failed
        ],
        "skippedNodeDetails": [
            {"nodeName": "node-9", "reason": "Cordoned", "message": "node is cordoned"}
        ],
        "createdAt": "2026-01-16T15:12:34Z",
        "startedAt": "2026-01-16T15:12:35Z",
    }


class FakeAPI:
    """Answers GETs from a script of bodies (the last one repeats); records every request."""

    def __init__(self, *answers: httpx.Response | dict[str, Any]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeAPI]]:
    """Route the CLI's client to the fake; `sleep` is skipped so watch runs instantly."""
    holder: list[FakeAPI] = []

    def make(url: str | None, token: str | None) -> IPSClient:
        return IPSClient(url or "http://ips.test", token, transport=httpx.MockTransport(holder[0]))

    monkeypatch.setattr(cli.tasks, "_client", make)
    monkeypatch.setattr(cli.watch.time, "sleep", lambda s: None)
    yield holder


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "160", "IPS_TOKEN": ""})


def test_parse_selector_and_toleration() -> None:
    assert parse_selector(["a=b,c=d", "e=f"]) == {"a": "b", "c": "d", "e": "f"}
    assert parse_toleration("gpu=true:NoSchedule") == {
        "key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule",
    }  # fmt: skip
    assert parse_toleration("dedicated:NoExecute") == {
        "key": "dedicated", "operator": "Exists", "effect": "NoExecute",
    }  # fmt: skip
    assert parse_toleration("dedicated") == {"key": "dedicated", "operator": "Exists"}
    with pytest.raises(Exception, match="effect must be one of"):
        parse_toleration("a=b:Sometimes")


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


def test_create_sends_the_spec_and_prints_the_id(fake: list[FakeAPI]) -> None:
    created = {k: task("pending")[k] for k in ("taskId", "status", "images", "batchSize")}
    fake.append(FakeAPI(httpx.Response(201, json={**created, "createdAt": "2026-01-16T15:12:34Z"})))
    out = run(
        "create", "--image", "nginx:latest", "--image", "redis:7", "--batch-size", "10",
        "--selector", "workload=compute", "--pull-secret", "regcred",
        "--toleration", "gpu=true:NoSchedule", "--timeout", "900", "--strategy", "rolling",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert out.stdout == "task-20260116-151234-a1b2c3d4\n"
    body = json.loads(fake[0].requests[0].content)
    assert body == {
        "images": ["nginx:latest", "redis:7"],
        "batchSize": 10,
        "nodeSelector": {"workload": "compute"},
        "imagePullSecrets": ["regcred"],
        "tolerations": [
            {"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        ],
        "timeoutSeconds": 900,
        "strategy": "rolling",
        "imagePullPolicy": "IfNotPresent",
        "maxFailureRatio": 1.0,
    }


def test_create_with_a_bad_field_says_which_and_sends_nothing(fake: list[FakeAPI]) -> None:
    fake.append(FakeAPI(task()))
    out = run("create", "--image", "Nginx Latest", "--batch-size", "500")
    assert out.exit_code == Exit.API_ERROR
    assert "images[0]" in out.stderr and "batchSize" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.output
    assert fake[0].requests == []


def test_get_shows_status_bar_counts_and_node_tables(fake: list[FakeAPI]) -> None:
    fake.append(FakeAPI(task("running", completed=1, failed=["node-5"])))
    out = run("get", "task-20260116-151234-a1b2c3d4")
    assert out.exit_code == 0, out.output
    text = out.stdout
    for needle in ("running", "50.0%", "2/4 nodes", "1/2", "completed 1", "failed 1",
                   "ImagePullBackOff 1",
                   "skipped 1", "node-5", "ImagePullBackOff", "node-9", "Cordoned",
                   "workload=compute"):  # fmt: skip
        assert needle in text, needle
    assert "\x1b[" not in text  # not a terminal: no escape codes


def test_get_json_is_the_raw_body(fake: list[FakeAPI]) -> None:
    body = task("running", completed=1)
    body["futureField"] = {"kept": True}  # raw means raw, even fields this client doesn't know
    fake.append(FakeAPI(body))
    out = run("get", "task-x", "-o", "json")
    assert out.exit_code == 0
    assert json.loads(out.stdout) == body


def test_list_table_footer_and_params(fake: list[FakeAPI]) -> None:
    summary = {
        "taskId": "task-a",
        "status": "completed",
        "images": ["a:1", "b:2", "c:3"],
        "progress": {"totalNodes": 50, "completedNodes": 50, "percentage": 100.0},
        "createdAt": "2026-01-16T15:12:34Z",
    }
    fake.append(FakeAPI({"tasks": [summary], "total": 7, "limit": 1, "offset": 2}))
    out = run("list", "--status", "completed", "--limit", "1", "--offset", "2")
    assert out.exit_code == 0, out.output
    assert "task-a" in out.stdout and "a:1, b:2 +1" in out.stdout and "50/50" in out.stdout
    assert "3-3 of 7 tasks (next page: --offset 3)" in out.stdout
    params = fake[0].requests[0].url.params
    assert (params["status"], params["limit"], params["offset"]) == ("completed", "1", "2")
    out = run("list", "--status", "bogus")
    assert out.exit_code == 2 and "bogus" in out.output


@pytest.mark.parametrize(
    ("status", "body", "code", "says"),
    [
        (400, {"error": "invalid request", "details": "limit: must be <= 100"}, Exit.API_ERROR,
         "limit: must be <= 100"),
        (401, {"error": "unauthorized", "details": "missing bearer token"}, Exit.API_ERROR,
         "IPS_TOKEN"),
        (404, {"error": "task not found", "details": "no task task-x", "taskId": "task-x"},
         Exit.API_ERROR, "task not found"),
        (409, {"taskId": "task-x", "status": "completed", "message": "task already completed"},
         Exit.API_ERROR, "already completed"),
        (503, {"error": "temporal unavailable", "details": "connection refused"},
         Exit.API_UNAVAILABLE, "temporal unavailable"),
    ],
)  # fmt: skip
def test_api_errors_are_one_line_and_an_exit_code(
    fake: list[FakeAPI], status: int, body: dict[str, Any], code: Exit, says: str
) -> None:
    fake.append(FakeAPI(httpx.Response(status, json=body)))
    for args in (["get", "task-x"], ["cancel", "task-x"], ["list"], ["watch", "task-x",
                 "--give-up-after", "0"]):  # fmt: skip
        out = run(*args)
        assert out.exit_code == code, (args, out.output)
        assert says in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "Traceback" not in out.output


def test_unreachable_api_is_exit_5(monkeypatch: pytest.MonkeyPatch) -> None:
    out = CliRunner().invoke(app, ["get", "task-x", "--url", "http://127.0.0.1:9"])
    assert out.exit_code == Exit.API_UNAVAILABLE
    assert "cannot reach the IPS API at http://127.0.0.1:9" in out.stderr


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


def test_broken_pipe_exits_quietly(fake: list[FakeAPI], monkeypatch: pytest.MonkeyPatch) -> None:
    fake.append(FakeAPI(task("running", completed=1)))

    def broken(*args: object, **kwargs: object) -> None:
        raise BrokenPipeError

    monkeypatch.setattr(cli.tasks, "render_task", broken)
    out = run("get", "task-1")
    assert out.exit_code == Exit.BROKEN_PIPE and "Traceback" not in out.output


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


def test_list_as_json_asks_the_api_exactly_as_the_table_does(fake: list[FakeAPI]) -> None:
    """Both go through ips_client's list parameters: same path, same query, same order."""
    page = {"tasks": [], "total": 0, "limit": 5, "offset": 3}
    fake.append(FakeAPI(page))
    table = run("list", "--status", "running", "--limit", "5", "--offset", "3")
    as_json = run("list", "--status", "running", "--limit", "5", "--offset", "3", "-o", "json")
    assert table.exit_code == as_json.exit_code == 0
    assert json.loads(as_json.stdout) == page
    first, second = (str(r.url) for r in fake[0].requests)
    assert first == second == "http://ips.test/api/v1/tasks?status=running&limit=5&offset=3"


def following(status: str = "running", added: int = 2, completed: int = 5) -> dict[str, Any]:
    body = task(status, completed=completed)
    body["progress"].update(totalNodes=6, totalBatches=3, currentBatch=3)
    body["follow"] = {}
    body["following"] = {"since": "2026-01-16T15:20:02Z", "nodesAdded": added}
    if status == "running":
        body["phase"] = "following"
    return body


def test_create_follow_sends_the_option(fake: list[FakeAPI]) -> None:
    created = {k: task("pending")[k] for k in ("taskId", "status", "images", "batchSize")}
    answer = httpx.Response(201, json={**created, "createdAt": "2026-01-16T15:12:34Z"})
    fake.append(FakeAPI(answer))
    out = run("create", "--image", "nginx:latest", "--batch-size", "5", "--follow", "3600")
    assert out.exit_code == 0, out.output
    assert json.loads(fake[0].requests[0].content)["follow"] == {"durationSeconds": 3600}
    fake[0] = FakeAPI(answer)
    out = run("create", "--image", "nginx:latest", "--batch-size", "5", "--follow", "forever")
    assert out.exit_code == 0, out.output
    assert json.loads(fake[0].requests[0].content)["follow"] == {}


def test_create_follow_with_a_bad_duration_names_the_field_and_sends_nothing(
    fake: list[FakeAPI],
) -> None:
    fake.append(FakeAPI(task()))
    out = run("create", "--image", "nginx:latest", "--batch-size", "5", "--follow", "5")
    assert out.exit_code == Exit.API_ERROR
    assert "follow.durationSeconds" in out.stderr
    out = run("create", "--image", "nginx:latest", "--batch-size", "5", "--follow", "soon")
    assert out.exit_code != 0 and "--follow" in out.output
    assert fake[0].requests == []


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
