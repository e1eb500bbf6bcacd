"""`ips get` and `ips watch` show the registry preflight (issue 16): the in-flight window next
to the batch, the resolved digests, and the warnings once."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest
from rich.console import Console

import cli.tasks
from cli.exit_codes import Exit
from cli.watch import follow
from tests.cli.conftest import FakeAPI, run, task

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "4f" * 32
WARNING = "preflight skipped for r.example/app:1: All connection attempts failed"


def registry_task(status: str = "running", window: int | None = 2, **kw: Any) -> dict[str, Any]:
    body = task(status, **kw)
    if window is not None:
        body["progress"]["inFlightWindow"] = window
    body["resolvedImages"] = [{"image": "nginx:latest", "digest": DIGEST}]
    body["warnings"] = [WARNING]
    body["pinDigests"] = True
    return body


def test_get_shows_the_window_the_digests_and_the_warnings(fake: list[FakeAPI]) -> None:
    fake.append(FakeAPI(registry_task(completed=1)))
    out = run("get", "task-20260116-151234-a1b2c3d4")
    assert out.exit_code == 0, out.output
    for needle in ("window 2/2", f"nginx:latest {DIGEST}", WARNING, "pin digests on"):
        assert needle in out.stdout, needle


def test_a_task_from_before_the_preflight_shows_no_window(fake: list[FakeAPI]) -> None:
    fake.append(FakeAPI(task("running", completed=1)))
    out = run("get", "task-20260116-151234-a1b2c3d4")
    assert out.exit_code == 0, out.output
    assert "window" not in out.stdout and "Resolved" not in out.stdout


def test_plain_watch_prints_a_line_when_the_window_moves_and_each_warning_once(
    fake: list[FakeAPI],
) -> None:
    fake.append(
        FakeAPI(
            registry_task(completed=1, window=2),
            registry_task(completed=1, window=1),  # only the window moved
            registry_task(completed=1, window=1),
            registry_task("completed", completed=4, window=2),
        )
    )
    out = run("watch", "task-20260116-151234-a1b2c3d4")
    assert out.exit_code == Exit.OK, out.output
    lines = out.stdout.splitlines()
    running = [ln for ln in lines if " running " in ln]
    assert len(running) == 2, lines  # the third answer changed nothing: no line
    assert "batch 1/2  window 2/2" in running[0] and "batch 1/2  window 1/2" in running[1]
    assert sum(WARNING in ln for ln in lines) == 1


def test_live_watch_shows_the_window_and_the_warning(fake: list[FakeAPI]) -> None:
    fake.append(
        FakeAPI(
            registry_task(completed=1, window=1),
            httpx.Response(200, json=registry_task("completed", completed=4, window=2)),
        )
    )
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160, color_system="truecolor")
    with cli.tasks._client(None, None) as client:
        code = follow(client, "task-1", interval=1, give_up_after=60, console=console)
    assert code == Exit.OK
    screen = buf.getvalue()
    assert "batch 1/2  window 1/2" in screen and WARNING in screen


def test_create_no_pin_digests_sends_false_and_the_default_sends_nothing(
    fake: list[FakeAPI],
) -> None:
    created = {k: task("pending")[k] for k in ("taskId", "status", "images", "batchSize")}
    fake.append(FakeAPI(httpx.Response(201, json={**created, "createdAt": "2026-01-16T15:12:34Z"})))
    assert (
        run("create", "--image", "nginx:1", "--batch-size", "2", "--no-pin-digests").exit_code == 0
    )
    assert run("create", "--image", "nginx:1", "--batch-size", "2").exit_code == 0
    off, default = (json.loads(r.content) for r in fake[0].requests)
    assert off["pinDigests"] is False
    assert "pinDigests" not in default  # an API from before it would reject the field


def test_create_pacing_fixed_sends_it_and_the_default_sends_nothing(fake: list[FakeAPI]) -> None:
    created = {k: task("pending")[k] for k in ("taskId", "status", "images", "batchSize")}
    fake.append(FakeAPI(httpx.Response(201, json={**created, "createdAt": "2026-01-16T15:12:34Z"})))
    base = ("create", "--image", "nginx:1", "--batch-size", "2")
    assert run(*base, "--pacing", "fixed").exit_code == 0
    assert run(*base, "--pacing", "adaptive").exit_code == 0
    assert run(*base).exit_code == 0
    fixed, adaptive, default = (json.loads(r.content) for r in fake[0].requests)
    assert fixed["pacing"] == "fixed"
    assert "pacing" not in adaptive and "pacing" not in default  # an older API rejects it


def test_create_rejects_an_unknown_pacing_before_any_request(fake: list[FakeAPI]) -> None:
    fake.append(FakeAPI())
    out = run("create", "--image", "nginx:1", "--batch-size", "2", "--pacing", "slow")
    assert out.exit_code == 2
    assert "--pacing" in out.output and "'slow' is not one of" in out.output
    assert fake[0].requests == []


def test_get_and_watch_show_a_fixed_pacing(fake: list[FakeAPI]) -> None:
    fixed = registry_task(completed=1, window=2)
    fixed["pacing"] = "fixed"
    fake.append(FakeAPI(fixed))
    out = run("get", "task-20260116-151234-a1b2c3d4")
    assert out.exit_code == 0, out.output
    assert "pacing fixed" in out.stdout and "window 2/2 fixed" in out.stdout
    adaptive = registry_task(completed=1, window=2)
    fake[0] = FakeAPI(adaptive)
    out = run("get", "task-20260116-151234-a1b2c3d4")
    assert "pacing adaptive" in out.stdout and "window 2/2 fixed" not in out.stdout
