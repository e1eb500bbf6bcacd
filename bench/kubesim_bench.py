"""kubesim throughput at scale: create-job and list-pods against `ips sim --nodes 5000`.

Starts kubesim as its own process (one core, like production), then:
  1. creates N Jobs (default 5,000, one pod each, pinned one per node) with C concurrent clients;
  2. lists all pods (N items) repeatedly, and lists one node's pods by field selector;
  3. waits for every Job to complete, and samples the server's RSS and CPU time.
Prints the numbers and writes bench/results/kubesim.json. No assertions.

    .venv/bin/python -m bench.kubesim_bench [--nodes 5000] [--jobs 5000] [--concurrency 64]
        [--time-scale 1] [--pull-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

RESULTS = Path(__file__).parent / "results" / "kubesim.json"
DEFAULT_SCENARIO = "kubesim/scenarios/default.yaml"
BENCH_IMAGE = "registry.example.com/bench/app:1"


def _proc_stats(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return {"rssMiB": rss_kb / 1024, "cpuSeconds": cpu}


def _job(name: str, node: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "kubesim-bench"}},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": 3600,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{"name": "c", "image": image}],
                }
            },
        },
    }


async def _run(
    url: str, pid: int, nodes: int, jobs: int, concurrency: int, image: str
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "nodes": nodes,
        "jobs": jobs,
        "concurrency": concurrency,
        "image": image,
    }
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=conn) as http:
        async with http.get("/api/v1/nodes") as r:
            t0 = time.perf_counter()
            node_names = [
                n["metadata"]["name"]
                for n in (await r.json())["items"]
                if n["status"]["conditions"][-1]["status"] == "True"  # a NotReady node never runs
            ]
        results["listNodesSeconds"] = time.perf_counter() - t0
        results["idle"] = _proc_stats(pid)

        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(jobs):
            queue.put_nowait(i)
        latencies: list[float] = []
        errors = 0

        async def worker() -> None:
            nonlocal errors
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                body = _job(f"bench-{i}", node_names[i % len(node_names)], image)
                t = time.perf_counter()
                async with http.post("/apis/batch/v1/namespaces/default/jobs", json=body) as r:
                    await r.read()
                    if r.status != 201:
                        errors += 1
                latencies.append(time.perf_counter() - t)

        cpu0 = _proc_stats(pid)["cpuSeconds"]
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        took = time.perf_counter() - t0
        latencies.sort()
        results["createJob"] = {
            "count": jobs,
            "errors": errors,
            "seconds": took,
            "perSecond": jobs / took,
            "p50ms": 1000 * latencies[len(latencies) // 2],
            "p99ms": 1000 * latencies[int(len(latencies) * 0.99)],
            "serverCpuSeconds": _proc_stats(pid)["cpuSeconds"] - cpu0,
        }

        async with http.get("/kubesim/stats") as r:
            results["activeJobsRightAfterCreates"] = (await r.json())["jobs"].get("Active", 0)

        async def timed_list(path: str, n: int) -> dict[str, float]:
            ts = []
            items = 0
            for _ in range(n):
                t = time.perf_counter()
                async with http.get(path) as r:
                    items = len((await r.json())["items"])
                ts.append(time.perf_counter() - t)
            return {"items": items, "perSecond": n / sum(ts), "meanMs": 1000 * sum(ts) / n}

        results["listPodsAll"] = await timed_list("/api/v1/namespaces/default/pods", 10)
        results["listPodsByNode"] = await timed_list(
            f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node_names[0]}", 100
        )
        results["listPodsByLabel"] = await timed_list(
            "/api/v1/namespaces/default/pods?labelSelector=job-name%3Dbench-7", 100
        )
        results["peakDuringLoad"] = _proc_stats(pid)

        t0 = time.perf_counter()
        max_active = 0
        while True:
            async with http.get("/kubesim/stats") as r:
                stats = await r.json()
            max_active = max(max_active, stats["jobs"].get("Active", 0))
            results["peakDuringLoad"] = max(
                results["peakDuringLoad"], _proc_stats(pid), key=lambda s: s["rssMiB"]
            )
            if stats["jobs"].get("Complete", 0) + stats["jobs"].get("Failed", 0) >= jobs:
                break
            if time.perf_counter() - t0 > 300:
                break
            await asyncio.sleep(0.5)
        results["allJobsFinishedSeconds"] = time.perf_counter() - t0
        results["maxActiveJobsSampled"] = max_active
        results["final"] = _proc_stats(pid)
        keys = ("objects", "jobs", "podPhases", "pullsTotal", "resourceVersion")
        results["serverStats"] = {k: stats[k] for k in keys}
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=5000)
    p.add_argument("--jobs", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--time-scale", type=float, default=1.0)
    p.add_argument(
        "--pull-seconds",
        type=float,
        default=60.0,
        help="simulated pull time of the Jobs' image (default 60, long enough for all 5,000 "
        "Jobs to be in flight at once)",
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        kc = Path(tmp) / "kubeconfig"
        scenario = Path(tmp) / "scenario.yaml"
        default = yaml.safe_load((Path(__file__).parents[1] / DEFAULT_SCENARIO).read_text())
        default["images"].append({"name": BENCH_IMAGE, "pullSeconds": args.pull_seconds})
        scenario.write_text(yaml.safe_dump(default))
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli.main",
                "sim",
                "--nodes",
                str(args.nodes),
                "--time-scale",
                str(args.time_scale),
                "--kubeconfig-out",
                str(kc),
                "--scenario",
                str(scenario),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            while not kc.exists():
                if proc.poll() is not None:
                    raise SystemExit("kubesim exited early")
                time.sleep(0.05)
            startup = time.perf_counter() - t0
            url = yaml.safe_load(kc.read_text())["clusters"][0]["cluster"]["server"]
            results = asyncio.run(
                _run(url, proc.pid, args.nodes, args.jobs, args.concurrency, BENCH_IMAGE)
            )
            results["pullSeconds"] = args.pull_seconds
            results["startupSeconds"] = startup
            results["timeScale"] = args.time_scale
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    c = results["createJob"]
    print(f"kubesim, {args.nodes} nodes: started in {results['startupSeconds']:.2f}s")
    print(
        f"  create-job: {c['perSecond']:.0f}/s ({c['count']} jobs, {c['errors']} errors, "
        f"p50 {c['p50ms']:.1f} ms, p99 {c['p99ms']:.1f} ms)"
    )
    for key in ("listPodsAll", "listPodsByNode", "listPodsByLabel"):
        r = results[key]
        print(f"  {key}: {r['perSecond']:.1f}/s, {r['meanMs']:.1f} ms mean, {r['items']} items")
    print(f"  {results['activeJobsRightAfterCreates']} Jobs active right after the last create")
    print(
        f"  all {args.jobs} jobs finished "
        f"{results['allJobsFinishedSeconds']:.1f}s after the last create"
    )
    peak = max(results["peakDuringLoad"]["rssMiB"], results["final"]["rssMiB"])
    print(f"  server RSS peak {peak:.0f} MiB, CPU {results['final']['cpuSeconds']:.1f}s")
    print(f"  wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
