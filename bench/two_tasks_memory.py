"""Worker memory with two 5,000-node tasks at once (issue 12, item 13), and heartbeat gaps.

kubesim holds 10,000 nodes; two tasks name 5,000 each (`nodeNames`, so the 5,000-name request
path is exercised too) and run at the same time on one `ips worker` process, whose peak RSS
(the kernel's VmHWM) is the figure. The worker's log gives the longest gap between two
heartbeats of any batch (the basis of PREWARM_HEARTBEAT_TIMEOUT in workflows/timeouts.py), and
kubesim's counters the Kubernetes requests per node.

    .venv/bin/python -m bench.two_tasks_memory [--nodes-per-task 5000] [--batch 100]
        [--pull-seconds 30] [--time-scale 20] [--out bench/results/two-tasks-memory.json]

Never asserts: prints the numbers and writes the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bench.engine_bench import KEYS, ROOT, start_kubesim
from bench.engine_bench import sim_url as engine_sim_url
from bench.harness import vm_hwm
from common.engine import PrewarmInput
from common.models import TaskSpec
from common.starting import start_prewarm_workflow

IMAGE = "registry.example.com/bench/fixed:1"
QUEUE = "bench-memory"


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="two-tasks-"))
    sim_args = argparse.Namespace(
        nodes=2 * args.nodes_per_task, pull_seconds=args.pull_seconds, time_scale=args.time_scale
    )
    sim, kubeconfig = start_kubesim(sim_args, tmp)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=shutil.which("temporal"),
        search_attributes=KEYS,
        dev_server_log_level="error",
        data_converter=pydantic_data_converter,
    )
    worker: subprocess.Popen[bytes] | None = None
    log_path = tmp / "worker.log"
    try:
        url = engine_sim_url(kubeconfig)
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            nodes = sorted(
                n["metadata"]["name"] for n in (await http.get("/api/v1/nodes")).json()["items"]
            )
            before = (await http.get("/kubesim/stats")).json()["requestsTotal"]
            ips = shutil.which("ips", path=str(Path(sys.executable).parent)) or "ips"
            worker_env = os.environ | {
                "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
                "TEMPORAL_TASK_QUEUE": QUEUE,
                "KUBECONFIG": str(kubeconfig),
                # Scaled like the cluster's clock: the simulated API server sees the defaults.
                "K8S_QPS": str(20 * args.time_scale),
                "K8S_BURST": str(int(40 * args.time_scale)),
                "METRICS_PORT": "0",
                "TEMPORAL_METRICS_PORT": "0",
                "LOG_LEVEL": "INFO",
            }
            worker = subprocess.Popen(  # noqa: ASYNC220 (a short, one-off start)
                [ips, "worker"],
                env=worker_env,
                stdout=log_path.open("wb"),
                stderr=subprocess.STDOUT,
            )
            started = time.monotonic()
            handles = []
            for k in range(2):
                tid = f"task-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-be0c500{k}"
                names = nodes[k * args.nodes_per_task : (k + 1) * args.nodes_per_task]
                spec = TaskSpec(images=[IMAGE], batch_size=args.batch, node_names=names)
                handles.append(
                    await start_prewarm_workflow(
                        env.client,
                        QUEUE,
                        PrewarmInput(task_id=tid, spec=spec, created_at=datetime.now(UTC)),
                    )
                )
            views = await asyncio.gather(*(h.result() for h in handles))
            makespan = time.monotonic() - started
            peak = vm_hwm(worker.pid)
            stats = (await http.get("/kubesim/stats")).json()
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        await env.shutdown()
        sim.terminate()
        sim.wait(20)
    gaps = [
        float(m.group(1))
        for m in re.finditer(r"longest gap between heartbeats (\d+\.\d+)s", log_path.read_text())
    ]
    requests = stats["requestsTotal"] - before
    shutil.rmtree(tmp, ignore_errors=True)
    total = 2 * args.nodes_per_task
    return {
        "benchmark": "two-tasks-memory",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "options": vars(args) | {"out": str(args.out)},
        "status": [v.status.value for v in views],
        "completed": [v.progress.completed_nodes for v in views],
        "workerPeakRssMiB": round(peak / 2**20, 1),
        "makespanSeconds": round(makespan, 1),
        "batches": len(gaps),
        "maxHeartbeatGapSeconds": max(gaps) if gaps else None,
        "k8sRequestsPerNode": round(requests / total, 3),
        "k8sRequestsByVerb": stats["requests"],
    }


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes-per-task", type=int, default=5000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--pull-seconds", type=float, default=30.0)
    p.add_argument("--time-scale", type=float, default=20.0)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "two-tasks-memory.json")
    args = p.parse_args()
    result = asyncio.run(main(args))
    print(json.dumps(result, indent=2))
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    cli()
