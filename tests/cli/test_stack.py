"""Every `ips` client command against the real stack, as a user runs it, with its exit codes.

`watch` is checked off a TTY (plain lines) and on one: a tmux pane of 120x30, captured with
`capture-pane` while the task runs and at the end (tests skip visibly without tmux).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ips_client import TaskStatus

from tests.stack import (
    NOT_FOUND_IMAGE,
    ROOT,
    WARM_IMAGE,
    Stack,
    free_port,
    fresh_image,
    run_api_without_temporal,
    run_stack,
    sample,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

TOKEN = f"cli-token-{uuid.uuid4().hex[:12]}"
TASK_ID = re.compile(r"^task-\d{8}-\d{6}-[0-9a-f]{8}$")
ESC = "\x1b"


@pytest.fixture(scope="module")
def stack(dev_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The task names pull secret regcred: the operator's policy must allow it (issue 14).
    with run_stack(
        dev_address,
        tmp_path_factory.mktemp("cli"),
        token=TOKEN,
        extra_env={"IPS_ALLOWED_PULL_SECRETS": "regcred"},
    ) as s:
        yield s


def create(stack: Stack, *args: str) -> str:
    out = stack.ips("create", *args)
    assert out.returncode == 0, out.stderr
    task_id = out.stdout.strip()
    assert TASK_ID.match(task_id), out.stdout
    return task_id


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    return lines[0]


def test_create_watch_get_list_cancel_on_a_task_with_failed_nodes(stack: Stack) -> None:
    task_id = create(
        stack,
        *("--image", WARM_IMAGE, "--image", NOT_FOUND_IMAGE, "--batch-size", "2"),
        *("--selector", "pool=obs", "--timeout", "60", "--pull-secret", "regcred"),
        *("--toleration", "dedicated=ips:NoSchedule"),
    )

    # watch, off a TTY: plain lines, no escape codes; exit 1 = completed with failed nodes.
    watch = stack.ips("watch", task_id)
    assert watch.returncode == 1, watch.stdout + watch.stderr
    assert ESC not in watch.stdout and "\r" not in watch.stdout
    lines = watch.stdout.splitlines()
    # A progress line per change (a fast task may go from pending straight to completed).
    assert any(f"{task_id} " in ln and "/7 nodes" in ln and "batch" in ln for ln in lines)
    failed = sorted(ln.split()[3] for ln in lines if "failed node" in ln)
    assert failed == ["fresh-1", "fresh-2"], lines  # each failed node once, as it appears
    assert all("ImageNotFound" in ln for ln in lines if "failed node" in ln)
    assert f"task {task_id} completed: 7/7 nodes, 2 completed, 2 failed, 1 skipped" in lines[-1]

    get = stack.ips("get", task_id)
    assert get.returncode == 0, get.stderr
    for needle in ("completed", "7/7 nodes", "fresh-1", "fresh-2", "ImageNotFound",
                   "cordon-1", "Cordoned", "pool=obs", "batch size 2", "[####"):  # fmt: skip
        assert needle in get.stdout, (needle, get.stdout)

    raw = stack.ips("get", task_id, "-o", "json")
    assert raw.returncode == 0
    direct = httpx.get(
        f"{stack.url}/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()
    assert json.loads(raw.stdout) == direct

    listed = stack.ips("list")
    assert listed.returncode == 0 and task_id in listed.stdout
    row = next(ln for ln in listed.stdout.splitlines() if task_id in ln)
    assert "completed" in row and "100.0%" in row
    assert task_id not in stack.ips("list", "--status", "running").stdout
    assert task_id in stack.ips("list", "--status", "completed").stdout
    page = json.loads(stack.ips("list", "-o", "json", "--limit", "1").stdout)
    assert page["limit"] == 1 and len(page["tasks"]) == 1 and page["total"] >= 1

    cancel = stack.ips("cancel", task_id)  # already finished: 409
    assert cancel.returncode == 4
    assert "completed" in one_error_line(cancel)


def test_watch_exit_codes_clean_failed_cancelled(stack: Stack) -> None:
    clean = stack.ips(
        "create", "-i", fresh_image(), "-b", "4", "-l", "pool=obs", "--watch", "--interval", "1"
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert TASK_ID.match(clean.stdout.splitlines()[0])
    assert "completed: 7/7 nodes, 7 completed, 0 failed, 1 skipped, 0 already warm" in clean.stdout

    failed = stack.ips(
        "create", "-i", NOT_FOUND_IMAGE, "-b", "2", "-l", "pool=obs",
        "--max-failure-ratio", "0", "--watch",
    )  # fmt: skip
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert "FAILED" in failed.stdout.splitlines()[-1]

    images = [arg for _ in range(3) for arg in ("-i", fresh_image())]  # ~30 s: cancel lands
    task_id = create(stack, *images, "-b", "1", "-l", "pool=slow")
    cancel = stack.ips("cancel", task_id)
    assert cancel.returncode == 0, cancel.stderr
    assert re.match(rf"^{task_id} (cancelled|cancelling): ", cancel.stdout)
    watch = stack.ips("watch", task_id)
    assert watch.returncode == 3, watch.stdout + watch.stderr
    assert "cancelled" in watch.stdout.splitlines()[-1]


def test_api_errors_are_one_line_with_an_exit_code(stack: Stack, tmp_path: Path) -> None:
    missing = stack.ips("get", "task-20260101-000000-00000000")
    assert missing.returncode == 4
    assert "task not found" in one_error_line(missing)
    assert stack.ips("watch", "task-20260101-000000-00000000").returncode == 4

    wrong = stack.ips("list", IPS_TOKEN="not-the-token")
    assert wrong.returncode == 4
    line = one_error_line(wrong)
    assert "unauthorized" in line and "IPS_TOKEN" in line and "not-the-token" not in line
    assert stack.ips("list", IPS_TOKEN="").returncode == 4  # no token at all

    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    gone = stack.ips("list", IPS_URL=url)
    assert gone.returncode == 5
    assert f"cannot reach the IPS API at {url}" in one_error_line(gone)

    with run_api_without_temporal(tmp_path / "no-temporal") as url:
        down = stack.ips("list", IPS_URL=url, IPS_TOKEN="")
    assert down.returncode == 5
    assert "temporal unavailable" in one_error_line(down)

    bad = stack.ips("create", "-i", "Not/An:Image:", "-b", "0")
    assert bad.returncode == 4
    line = one_error_line(bad)
    assert "images[0]" in line and "batchSize" in line


# ---------------------------------------------------------------------------------------------
# watch on a real terminal (tmux)
# ---------------------------------------------------------------------------------------------


class Tmux:
    """One private tmux server (its own socket), a 120x30 pane per session."""

    def __init__(self) -> None:
        exe = shutil.which("tmux")
        if exe is None:
            pytest.skip("tmux is not installed (apt-get install tmux): TTY watch not tested")
        self.exe = exe
        self.socket = f"ips-test-{uuid.uuid4().hex[:8]}"

    def tmux(self, *args: str) -> str:
        out = subprocess.run(
            [self.exe, "-L", self.socket, *args], capture_output=True, text=True, timeout=20
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        command = (
            f"cd {shlex.quote(str(ROOT))} && env {exports} TERM=xterm-256color "
            f"{shlex.join(argv)}; echo EXIT=$?; sleep 600"
        )
        self.tmux("new-session", "-d", "-s", name, "-x", "120", "-y", "30", command)

    def capture(self, name: str, history: bool = False) -> str:
        args = ["capture-pane", "-p", "-t", name] + (["-S", "-500"] if history else [])
        return self.tmux(*args)

    def send(self, name: str, *keys: str) -> None:
        self.tmux("send-keys", "-t", name, *keys)

    def wait_for(
        self, name: str, predicate: object, timeout: float = 90, history: bool = False
    ) -> tuple[str, list[str]]:
        """Poll the pane until `predicate(screen)`; return that screen and every frame seen."""
        frames: list[str] = []

        def matched() -> bool:
            screen = self.capture(name, history)
            if not frames or frames[-1] != screen:
                frames.append(screen)
            return bool(predicate(screen))  # type: ignore[operator]

        wait_until(
            matched,
            timeout,
            interval=0.25,
            message=lambda: f"pane never matched; last screen:\n{frames[-1] if frames else ''}",
        )
        return frames[-1], frames

    def close(self) -> None:
        subprocess.run([self.exe, "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    t = Tmux()
    try:
        yield t
    finally:
        t.close()


def ips_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", *args]


def test_watch_on_a_tty_shows_bar_counts_batches_failures_and_status(
    stack: Stack, tmux: Tmux, tmp_path: Path
) -> None:
    # pool=slow: 6 nodes at 2 MB/s, 4 of which hold the not-found image: 4 complete, 2 fail.
    task_id = create(
        stack, "-i", fresh_image(), "-i", NOT_FOUND_IMAGE, "-b", "2", "-l", "pool=slow"
    )
    env = {"IPS_URL": stack.url, "IPS_TOKEN": TOKEN, "COLUMNS": "120", "LINES": "30"}
    tmux.start("watch", ips_argv("watch", task_id), env)

    live, frames = tmux.wait_for("watch", lambda s: "running" in s and "ETA" in s, timeout=60)
    assert "━" in live and re.search(r"batch [1-3]/3", live), live
    assert re.search(r"\d+/6 nodes", live), live
    final, more = tmux.wait_for("watch", lambda s: "EXIT=" in s, timeout=120, history=True)
    frames += more
    (tmp_path / "watch-tty.txt").write_text(final)
    print(f"\n--- ips watch on a TTY (tmux 120x30) ---\n{final}")

    assert "EXIT=1" in final, final  # completed with failed nodes
    assert "━" in final  # Rich's bar, drawn on a terminal
    assert "6/6 nodes" in final and "batch 3/3" in final, final
    assert "completed 4" in final and "failed 2" in final, final
    fails = [ln for ln in final.splitlines() if ln.startswith("failed node ")]
    assert len(fails) == 2 and all("ImageNotFound" in ln for ln in fails), final
    assert f"task {task_id} completed: 6/6 nodes, 4 completed, 2 failed" in final
    assert "failures by reason: ImageNotFound 2" in final
    # At most one redraw a second: far fewer distinct frames than quarter-second polls.
    assert len(frames) >= 2


def test_ctrl_c_stops_watching_and_the_task_keeps_running(stack: Stack, tmux: Tmux) -> None:
    # Three fresh images, one node at a time: ~30 s, long enough to still run after Ctrl-C.
    images = [arg for _ in range(3) for arg in ("-i", fresh_image())]
    task_id = create(stack, *images, "-b", "1", "-l", "pool=slow")
    before = stack.metrics("api")
    env = {"IPS_URL": stack.url, "IPS_TOKEN": TOKEN}
    tmux.start("watch", ips_argv("watch", task_id), env)
    tmux.wait_for("watch", lambda s: "running" in s and "batch" in s, timeout=60)
    tmux.send("watch", "C-c")
    screen, _ = tmux.wait_for("watch", lambda s: "EXIT=" in s, timeout=30, history=True)
    assert "EXIT=130" in screen, screen
    assert f"task {task_id} keeps running" in screen and "Traceback" not in screen
    after = stack.metrics("api")
    deletes = sum(
        v for k, v in after.get("ips_api_request_seconds_count", {}).items()
        if dict(k).get("method") == "DELETE"
    ) - sum(
        v for k, v in before.get("ips_api_request_seconds_count", {}).items()
        if dict(k).get("method") == "DELETE"
    )  # fmt: skip
    assert deletes == 0  # Ctrl-C never cancels
    with stack.client() as ips:
        assert ips.get(task_id).status == TaskStatus.RUNNING
        ips.cancel(task_id)  # leave no work behind for the next test
        assert ips.wait(task_id, timeout=60, poll_interval=0.5).status == TaskStatus.CANCELLED
    assert sample(after, "ips_tasks_started_total") - sample(before, "ips_tasks_started_total") == 0


def test_watch_rides_out_an_api_restart(stack: Stack) -> None:
    """A rolling deploy of the API during a watch: the watch says so, waits, and ends normally."""
    images = [arg for _ in range(2) for arg in ("-i", fresh_image())]
    task_id = create(stack, *images, "-b", "2", "-l", "pool=slow")
    watch = subprocess.Popen(
        ips_argv("watch", task_id),
        cwd=ROOT,
        env=stack.cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert watch.stdout is not None
        for line in watch.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(  # the watch is following the task
            lambda: any(task_id in line for line in lines),
            60,
            interval=0.1,
            message=lambda: f"the watch never drew the task; output: {''.join(lines)}",
        )
        stack.procs["api"].kill()
        wait_until(  # a poll found nobody there
            lambda: any("API unavailable for" in line for line in lines),
            60,
            interval=0.1,
            message=lambda: f"the watch never noticed the outage; output: {''.join(lines)}",
        )
        stack.respawn("api")
        watch.wait(timeout=120)
        reader.join(timeout=10)
        err = watch.stderr.read() if watch.stderr else ""
    finally:
        if watch.poll() is None:
            watch.kill()
    out = "".join(lines)
    assert watch.returncode == 0, out + err
    assert "API unavailable for" in out and "cannot reach the IPS API" in out, out
    assert f"task {task_id} completed: 6/6 nodes, 6 completed, 0 failed" in out.splitlines()[-1]


def test_a_policy_refusal_names_the_rule_and_exits_4(stack: Stack) -> None:
    """Issue 14: a 403 from the operator's policy is no token problem: no IPS_TOKEN hint."""
    out = stack.ips(
        "create", "--image", "nginx:1", "--batch-size", "1", "--pull-secret", "someone-elses"
    )
    assert out.returncode == 4, out.stderr
    line = one_error_line(out)
    assert "IPS_ALLOWED_PULL_SECRETS" in line and "IPS_TOKEN" not in line, line
