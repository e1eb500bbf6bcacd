"""What every benchmark shares: the real stack, running one task and sampling its progress, and
running one benchmark on a Temporal dev server of its own (`python -m bench.<name>`).

The stack is tests/stack.py's `run_stack` (`ips sim`, `ips worker` and `ips api` as
subprocesses, configured only through the environment), so the benchmarks measure exactly what
the end-to-end tests run. Temporal is a `temporal server start-dev` of our own
(bench/temporal_server.py), which the chaos suite also uses because it can be stopped and
restarted on the same SQLite file. What a benchmark observes besides the task (kubesim's request
counts, history sizes, peak memory) is bench/observation.py's.

Benchmarks never assert: they print numbers and write `bench/results/<name>.json`, plus a PNG
plot when matplotlib is importable (bench/report.py).

Every benchmark imports what it needs from here (`from bench.harness import ...`).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from bench.observation import (
    RssSampler,
    follow_payloads,
    history_stats,
    sim_stats,
    sim_url,
    vm_hwm,
)
from bench.report import (
    RESULTS_DIR,
    ROOT,
    ideal_batch_curve,
    percentile,
    plot_progress,
    write_result,
)
from bench.temporal_server import TemporalServer, temporal_exe, temporal_server
from common import temporal as t
from tests.stack import Stack, free_port, run_stack

__all__ = [
    "RESULTS_DIR",
    "ROOT",
    "WORKER_IMAGE",
    "RssSampler",
    "Stack",
    "TaskRun",
    "TemporalServer",
    "follow_payloads",
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
    "vm_hwm",
    "write_result",
]

# The engine's worker image; kubesim scenarios put it on every node, so the init container costs
# the kubelet's "already present" overhead and the measured time is the image pull itself.
WORKER_IMAGE = "busybox:1.37.0-musl"


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
