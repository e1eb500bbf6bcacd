"""The task commands against a scripted fake API: create, get, list, cancel, their one-line
errors and exit codes.

The same commands against the real stack (and `watch` on a real TTY) are in tests/cli/test_stack.py.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import cli.tasks
import cli.watch
from cli.exit_codes import Exit
from cli.main import app
from cli.tasks import parse_selector, parse_toleration
from tests.cli.conftest import FakeAPI, run, task

pytestmark = pytest.mark.unit


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


def test_broken_pipe_exits_quietly(fake: list[FakeAPI], monkeypatch: pytest.MonkeyPatch) -> None:
    fake.append(FakeAPI(task("running", completed=1)))

    def broken(*args: object, **kwargs: object) -> None:
        raise BrokenPipeError

    monkeypatch.setattr(cli.tasks, "render_task", broken)
    out = run("get", "task-1")
    assert out.exit_code == Exit.BROKEN_PIPE and "Traceback" not in out.output


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
