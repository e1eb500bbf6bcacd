"""`ips dev` brings the whole stack up, keeps tasks across restarts and leaves no orphan."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.waiting import wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(
    url: str, deadline: float, proc: subprocess.Popen[bytes], log: Path
) -> httpx.Response:
    last: list[Exception] = []

    def answered() -> httpx.Response | None:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"ips dev exited early with {proc.returncode}:\n{tail}")
        try:
            r = httpx.get(url, timeout=2)
        except httpx.HTTPError as exc:
            last[:] = [exc]
            return None
        return r if r.status_code == 200 else None

    return wait_until(
        answered,
        max(0.0, deadline - time.monotonic()),
        interval=0.3,
        message=lambda: f"{url} never answered 200 ({last[0] if last else None})",
    )


class DevStack:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.temporal_port = _free_port()
        self.ui_port = _free_port()
        self.api_port = _free_port()
        self.metrics_port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.children: list[psutil.Process] = []
        self.log = state_dir / "dev.log"
        self.starts = 0

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{self.temporal_port}",
            "SERVER_PORT": str(self.api_port),
            "METRICS_PORT": str(self.metrics_port),
        }
        env.pop("KUBECONFIG", None)
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join(
            p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin
        )
        self.state_dir.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "dev", "--nodes", "10",
             "--state-dir", str(self.state_dir), "--ui-port", str(self.ui_port)],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        _wait_http(f"{self.api}/healthz", deadline, self.proc, self.log)
        _wait_http(f"http://127.0.0.1:{self.ui_port}/", deadline, self.proc, self.log)
        # The supervisor prints its banner once it has seen /healthz itself (it polls too).
        self.starts += 1
        wait_until(
            lambda: self.log.read_text().count("IPS is up") >= self.starts,
            max(0.0, deadline - time.monotonic()),
            interval=0.2,
            message="ips dev printed no banner",
        )
        self.children = psutil.Process(self.proc.pid).children(recursive=True)

    def stop(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=40)
        _gone, alive = psutil.wait_procs(self.children, timeout=10)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"orphans left behind: {[(p.pid, p.name()) for p in alive]}"

    def kill_all(self) -> None:
        for p in [*self.children, *([psutil.Process(self.proc.pid)] if self.proc else [])]:
            try:
                p.kill()
            except psutil.Error:
                pass


@pytest.fixture
def stack(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = DevStack(tmp_path / "state")
    yield s
    if s.proc is not None and s.proc.poll() is None:
        s.kill_all()


def test_dev_brings_up_the_stack_and_keeps_tasks_across_restarts(stack: DevStack) -> None:
    stack.start()
    names = {p.name() for p in stack.children}
    assert any("temporal" in n for n in names), names
    assert len(stack.children) >= 4, names  # temporal, kubesim, worker, api

    out = stack.log.read_text()
    for what in ("OpenAPI docs", "Temporal Web UI", f":{stack.ui_port}", "--kubeconfig"):
        assert what in out, f"{what!r} not printed by ips dev"
    # Issue 14: no tokens here, so the API runs open on purpose (IPS_AUTH=none), says so with a
    # WARNING, and listens on loopback only.
    assert "WARNING" in out and "NO authentication" in out, out[-3000:]
    ports = {stack.api_port, stack.metrics_port}
    # The worker serves its metrics once it is connected: wait for that, not for a while.
    _wait_http(f"http://127.0.0.1:{stack.metrics_port}/metrics", time.monotonic() + 30,
               stack.proc, stack.log)  # fmt: skip
    listening = {
        (conn.laddr.port, conn.laddr.ip)
        for p in stack.children
        for conn in getattr(p, "net_connections", p.connections)(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port in ports
    }
    assert listening == {(port, "127.0.0.1") for port in ports}, listening

    created = httpx.post(
        f"{stack.api}/api/v1/tasks",
        json={"images": ["nginx:latest"], "batchSize": 10},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["taskId"]

    stack.stop(signal.SIGINT)

    # A restart on the same state directory still knows the task.
    stack.start()
    got = httpx.get(f"{stack.api}/api/v1/tasks/{task_id}", timeout=10)
    assert got.status_code == 200, got.text
    assert got.json()["taskId"] == task_id
    stack.stop(signal.SIGTERM)
    assert stack.proc is not None and stack.proc.returncode == 0
