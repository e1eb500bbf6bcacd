"""The engine at scale: one task over 5,000 nodes, batchSize 100, on kubesim (time-scaled).

Reports the history events of each run (continue-as-new), the total, makespan / ideal
(ideal = ceil(N/B) x pull time), and Kubernetes requests per node (kubesim's own counters).
kubesim and the Temporal dev server run as separate processes; the worker runs in this one.

    .venv/bin/python -m bench.engine_bench [--nodes 5000] [--batch 100] [--pull-seconds 30]
                                           [--time-scale 20] [--out bench/results/engine.json]

Never asserts: prints the numbers and writes the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from common.engine import PrewarmInput
from common.models import TaskSpec, TaskView
from common.settings import LogLevel, Settings
from common.starting import start_prewarm_workflow
from common.temporal import ALL_SEARCH_ATTRIBUTE_KEYS
from worker.main import build_worker

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "registry.example.com/bench/fixed:1"
HELPER = "busybox:1.37.0-musl"
KEYS = ALL_SEARCH_ATTRIBUTE_KEYS


def scenario(nodes: int, pull_seconds: float) -> dict[str, Any]:
    """Uniform nodes that already hold the helper image; no jitter: a node's time is its pull."""
    return {
        "defaults": {"pullOverheadSeconds": 0.0, "pullJitter": 0.0, "containerRunSeconds": 0.0},
        "nodeGroups": [
            {
                "name": "bench",
                "count": nodes,
                "labels": {"bench": "engine"},
                "images": [{"name": HELPER}],
            },
        ],
        "images": [{"name": HELPER, "size": "2MiB"}, {"name": IMAGE, "pullSeconds": pull_seconds}],
    }


def start_kubesim(args: argparse.Namespace, tmp: Path) -> tuple[subprocess.Popen[bytes], Path]:
    scen = tmp / "scenario.yaml"
    scen.write_text(yaml.safe_dump(scenario(args.nodes, args.pull_seconds)))
    kubeconfig = tmp / "kubeconfig"
    ips = shutil.which("ips", path=str(Path(sys.executable).parent)) or "ips"
    proc = subprocess.Popen(
        [
            ips,
            "sim",
            "--scenario",
            str(scen),
            "--nodes",
            str(args.nodes),
            "--time-scale",
            str(args.time_scale),
            "--kubeconfig-out",
            str(kubeconfig),
            "--seed",
            "1",
        ],
        stdout=(tmp / "sim.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while not kubeconfig.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"kubesim did not start: {(tmp / 'sim.log').read_text()[-2000:]}")
        time.sleep(0.2)
    return proc, kubeconfig


def sim_url(kubeconfig: Path) -> str:
    return str(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])


async def run_history(client: Client, handle: WorkflowHandle[Any, TaskView]) -> list[int]:
    """Events per run, following the continue-as-new chain from the first run."""
    lengths: list[int] = []
    run_id: str | None = handle.first_execution_run_id
    while run_id is not None:
        h = client.get_workflow_handle(handle.id, run_id=run_id)
        events = [e async for e in h.fetch_history_events()]
        lengths.append(len(events))
        attrs = events[-1].workflow_execution_continued_as_new_event_attributes
        run_id = attrs.new_execution_run_id or None
    return lengths


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="engine-bench-"))
    sim, kubeconfig = start_kubesim(args, tmp)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=shutil.which("temporal"),
        search_attributes=KEYS,
        dev_server_log_level="error",
        data_converter=pydantic_data_converter,
    )
    try:
        url = sim_url(kubeconfig)
        # Client rate limits scaled like the cluster's clock, so the simulated API server sees
        # the production defaults (K8S_QPS 20, burst 40 per simulated second).
        settings = Settings(
            kubeconfig=kubeconfig,
            k8s_qps=20 * args.time_scale,
            k8s_burst=int(40 * args.time_scale),
            metrics_port=0,
            temporal_metrics_port=0,
            log_level=LogLevel.WARNING,
        )
        tid = f"task-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-be0c4000"
        spec = TaskSpec(images=[IMAGE], batch_size=args.batch, node_selector={"bench": "engine"})
        async with httpx.AsyncClient(base_url=url) as http:
            before = (await http.get("/kubesim/stats")).json()["requestsTotal"]
            async with await build_worker(env.client, settings, task_queue="bench"):
                started = time.monotonic()
                handle = await start_prewarm_workflow(
                    env.client,
                    "bench",
                    PrewarmInput(task_id=tid, spec=spec, created_at=datetime.now(UTC)),
                )
                view = await handle.result()
                makespan = time.monotonic() - started
            stats = (await http.get("/kubesim/stats")).json()
        lengths = await run_history(env.client, handle)
    finally:
        await env.shutdown()
        sim.terminate()
        sim.wait(20)
        shutil.rmtree(tmp, ignore_errors=True)

    pull_wall = args.pull_seconds / args.time_scale
    ideal = math.ceil(args.nodes / args.batch) * pull_wall
    requests = stats["requestsTotal"] - before
    result = {
        "benchmark": "engine",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "options": vars(args) | {"out": str(args.out)},
        "status": view.status.value,
        "progress": view.progress.model_dump(by_alias=True),
        "makespanSeconds": round(makespan, 2),
        "idealSeconds": round(ideal, 2),
        "makespanOverIdeal": round(makespan / ideal, 3),
        "runs": len(lengths),
        "eventsPerRun": lengths,
        "maxEventsPerRun": max(lengths),
        "historyEvents": sum(lengths),
        "historyEventsPerNode": round(sum(lengths) / args.nodes, 3),
        "k8sRequests": requests,
        "k8sRequestsPerNode": round(requests / args.nodes, 3),
        "k8sRequestsByVerb": stats["requests"],
        "pullsTotal": stats["pullsTotal"],
    }
    return result


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=5000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--pull-seconds", type=float, default=30.0, help="simulated pull time")
    p.add_argument("--time-scale", type=float, default=20.0)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "engine.json")
    args = p.parse_args()
    result = asyncio.run(main(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"status             {result['status']} ({result['progress']['completedNodes']} nodes)")
    print(
        f"makespan / ideal   {result['makespanSeconds']} s / {result['idealSeconds']} s = "
        f"{result['makespanOverIdeal']}"
    )
    print(f"runs               {result['runs']}: events per run {result['eventsPerRun']}")
    print(
        f"history events     {result['historyEvents']} ({result['historyEventsPerNode']} per node)"
    )
    print(f"k8s requests/node  {result['k8sRequestsPerNode']} ({result['k8sRequests']} total)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    cli()
