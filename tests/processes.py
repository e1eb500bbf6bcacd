"""`ips` processes for the tests that run it as production does: spawned with `python -m cli.main`,
configured only through the environment, logged to a file of their own, and stopped or killed.

    proc = spawn("api", ["api"], base_env(SERVER_PORT=str(port)), tmp_path)
    wait_http(proc, f"http://127.0.0.1:{port}/healthz", time.monotonic() + START_TIMEOUT)

tests/stack.py builds a whole stack (`ips sim`, `ips worker`, `ips api`) from these.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0
# Env vars of the outer shell that must not leak into a stack's processes.
_SCRUB = ("IPS_TOKEN", "IPS_URL", "IPS_API_TOKENS", "IPS_API_TOKENS_FILE", "KUBECONFIG",
          "TEMPORAL_ADDRESS", "TEMPORAL_TASK_QUEUE", "SERVER_PORT", "METRICS_PORT",
          "TEMPORAL_METRICS_PORT", "LOG_FORMAT", "IPS_LOG_FORMAT", "LOG_LEVEL", "IPS_AUTH",
          "SERVER_HOST", "IPS_MAX_RUNNING_TASKS")  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 25.0) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def terminate(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill: no clean-up at all."""
        if self.alive():
            self.popen.kill()
            self.popen.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def stop_all(procs: list[Proc], timeout: float = 15.0) -> None:
    """SIGTERM to all at once, then SIGKILL whatever has not exited within `timeout`."""
    for proc in procs:
        proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(5)


def spawn(
    name: str, args: list[str], env: dict[str, str], log_dir: Path, *, append: bool = False
) -> Proc:
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab" if append else "wb") as sink:
        popen = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Proc(name, popen, log_path, list(args), dict(env))


def wait_http(proc: Proc, url: str, deadline: float) -> None:
    def answered() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_text()}")
        return httpx.get(url, timeout=2).is_success

    wait_until(
        answered,
        max(0.0, deadline - time.monotonic()),
        interval=0.2,
        message=lambda: f"{proc.name} did not answer {url}:\n{proc.log_text()[-3000:]}",
        ignore=(httpx.HTTPError,),
    )


def wait_file(proc: Proc, path: Path, deadline: float) -> None:
    def written() -> bool:
        if path.exists():
            return True
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_text()}")
        return False

    wait_until(
        written,
        max(0.0, deadline - time.monotonic()),
        interval=0.1,
        message=lambda: f"{proc.name} wrote no {path.name}:\n{proc.log_text()[-3000:]}",
    )
