"""Makespan against the ideal, and the cost per node, on the real stack (kubesim time-scaled).

Scenarios (bench/README.md explains each figure):
  * fixed pull time, `batch`: N=1,000 and N=5,000 nodes, batchSize 100;
    makespan / ideal, where ideal = ceil(N/B) x pull time;
  * log-normal pull times on 1,000 nodes, `batch` and then `rolling`: each makespan / the lower
    bound max(sum(t)/B, max t), with t the pull times kubesim really drew (its Pulled events);
  * the cost of the 5,000-node run: Kubernetes requests per node (kubesim's counters), Temporal
    history events per node and per run, and the worker's peak RSS.

Everything is scaled by kubesim's --time-scale: simulated seconds run `scale` times faster, and
so do the worker's rate limits (K8S_QPS and K8S_BURST x scale), so the simulated cluster sees
the client the production defaults describe. Fixed costs that do not scale (Temporal round
trips, Python CPU) weigh `scale` times more than they would in production: the ratios here are
pessimistic.

    .venv/bin/python -m bench.makespan [--small]
"""

from __future__ import annotations

import asyncio
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    WORKER_IMAGE,
    RssSampler,
    Stack,
    TaskRun,
    TemporalServer,
    history_stats,
    ideal_batch_curve,
    plot_progress,
    run_stack,
    run_task,
    sim_stats,
    sim_url,
    standalone_main,
    write_result,
)

NAME = "makespan"
FIXED_SMALL = "registry.example.com/bench/fixed-small:1"
FIXED_LARGE = "registry.example.com/bench/fixed-large:1"
LOGN_BATCH = "registry.example.com/bench/lognormal-batch:1"
LOGN_ROLLING = "registry.example.com/bench/lognormal-rolling:1"
# Production's client defaults (common/settings.py), in simulated seconds.
K8S_QPS, K8S_BURST = 20, 40


class Options:
    """The full run, or the smoke test's (`small`: 100 nodes, seconds long)."""

    def __init__(self, small: bool = False) -> None:
        self.small = small
        self.time_scale = 10.0
        self.batch = 25 if small else 100
        self.small_nodes = 100 if small else 1000
        self.large_nodes = 0 if small else 5000
        self.pull_seconds = 5.0 if small else 30.0  # simulated
        self.lognormal_median = 3.0 if small else 10.0  # simulated
        self.lognormal_sigma = 0.6

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def scenario(opts: Options, images: list[dict[str, Any]]) -> dict[str, Any]:
    """Nodes that already hold the worker image (so its init container costs only the kubelet's
    'already present' check), no jitter, instant containers: a node's time is its pull."""
    groups = [
        {
            "name": "small",
            "count": opts.small_nodes,
            "labels": {"bench": "small"},
            "images": [{"name": WORKER_IMAGE}],
        }
    ]
    if opts.large_nodes > opts.small_nodes:
        groups.append(
            {
                "name": "large",
                "count": opts.large_nodes - opts.small_nodes,
                "labels": {"bench": "large"},
                "images": [{"name": WORKER_IMAGE}],
            }
        )
    return {
        "defaults": {"pullOverheadSeconds": 0.0, "pullJitter": 0.0, "containerRunSeconds": 0.0},
        "nodeGroups": groups,
        "images": [{"name": WORKER_IMAGE, "size": "2MiB"}, *images],
    }


def scaled_env(time_scale: float) -> dict[str, str]:
    return {
        "K8S_QPS": f"{K8S_QPS * time_scale:g}",
        "K8S_BURST": str(int(K8S_BURST * time_scale)),
    }


_PULLED = re.compile(r'Successfully pulled image "([^"]+)" in ([0-9.hms]+) ')


def _go_duration(text: str) -> float:
    total = 0.0
    for value, unit in re.findall(r"([0-9.]+)(ms|h|m|s)", text):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total


def pull_durations(stack: Stack, image: str) -> list[float]:
    """The simulated seconds of every pull of `image`, from the kubelet's Pulled events."""
    response = httpx.get(f"{sim_url(stack)}/api/v1/namespaces/default/events", timeout=60)
    response.raise_for_status()
    out = []
    for event in response.json()["items"]:
        m = _PULLED.match(event.get("message", ""))
        if m and m[1] == image:
            out.append(_go_duration(m[2]))
    return out


def _requests(before: dict[str, Any], after: dict[str, Any]) -> int:
    return int(after["requestsTotal"]) - int(before["requestsTotal"])


async def measured_run(
    stack: Stack, server: TemporalServer, spec: dict[str, Any]
) -> tuple[TaskRun, dict[str, Any]]:
    """One task, with the Kubernetes requests and Temporal events it cost."""
    client = await server.client()
    before = sim_stats(stack)
    run = await run_task(stack, client, spec)
    # Let trailing requests (the last watch, a final relist) land before counting.
    await asyncio.sleep(1.0)
    after = sim_stats(stack)
    history = await history_stats(client, run.task_id)
    nodes = int(run.view.get("progress", {}).get("totalNodes", 0)) or 1
    k8s = _requests(before, after)
    cost = {
        "k8sRequests": k8s,
        "k8sRequestsPerNode": round(k8s / nodes, 3),
        "historyEvents": history["events"],
        "historyEventsPerNode": round(history["events"] / nodes, 4),
        "runs": history["runs"],
        "maxEventsPerRun": history["maxEventsPerRun"],
    }
    return run, cost


def _summary(run: TaskRun) -> dict[str, Any]:
    return {
        "taskId": run.task_id,
        "status": run.view.get("status"),
        "progress": run.view.get("progress"),
        "makespanSeconds": round(run.makespan, 3),
        "samples": [[round(t, 3), d] for t, d in run.samples],
    }


async def fixed(
    stack: Stack,
    server: TemporalServer,
    opts: Options,
    nodes: int,
    image: str,
    selector: dict[str, str],
) -> dict[str, Any]:
    spec = {"images": [image], "batchSize": opts.batch, "nodeSelector": selector}
    run, cost = await measured_run(stack, server, spec)
    pull = opts.pull_seconds / opts.time_scale
    ideal = math.ceil(nodes / opts.batch) * pull
    out = {
        "nodes": nodes,
        "batchSize": opts.batch,
        "strategy": "batch",
        "pullSecondsSimulated": opts.pull_seconds,
        "pullSecondsWall": pull,
        "idealSeconds": round(ideal, 3),
        "makespanOverIdeal": round(run.makespan / ideal, 3),
        # What the ratio hides: wall seconds lost per batch (start, Job creation, hand-offs).
        "overheadPerBatchSeconds": round((run.makespan - ideal) / math.ceil(nodes / opts.batch), 3),
        **cost,
        **_summary(run),
    }
    print(
        f"  fixed {nodes}/{opts.batch}: makespan {run.makespan:.1f}s, ideal {ideal:.1f}s, "
        f"ratio {out['makespanOverIdeal']:.3f}; {cost['k8sRequestsPerNode']} k8s requests/node, "
        f"{cost['historyEventsPerNode']} events/node, max {cost['maxEventsPerRun']} events/run"
    )
    return out


async def lognormal(
    stack: Stack, server: TemporalServer, opts: Options, strategy: str, image: str
) -> dict[str, Any]:
    spec = {
        "images": [image],
        "batchSize": opts.batch,
        "nodeSelector": {"bench": "small"},
        "strategy": strategy,
    }
    run, cost = await measured_run(stack, server, spec)
    pulls = [d / opts.time_scale for d in pull_durations(stack, image)]
    bound = max(sum(pulls) / opts.batch, max(pulls)) if pulls else float("nan")
    out = {
        "nodes": opts.small_nodes,
        "batchSize": opts.batch,
        "strategy": strategy,
        "pullsSeen": len(pulls),
        "pullSecondsWall": {
            "sum": round(sum(pulls), 3),
            "max": round(max(pulls, default=0), 3),
            "mean": round(sum(pulls) / len(pulls), 3) if pulls else None,
        },
        "lowerBoundSeconds": round(bound, 3),
        "makespanOverLowerBound": round(run.makespan / bound, 3),
        **cost,
        **_summary(run),
    }
    print(
        f"  log-normal {strategy}: makespan {run.makespan:.1f}s, lower bound {bound:.1f}s, "
        f"ratio {out['makespanOverLowerBound']:.3f}"
    )
    return out


async def bench(
    opts: Options, server: TemporalServer, work_dir: Path, results_dir: Path
) -> dict[str, Any]:
    logn = {"pullSeconds": {"median": opts.lognormal_median, "sigma": opts.lognormal_sigma}}
    images: list[dict[str, Any]] = [
        {"name": FIXED_SMALL, "pullSeconds": opts.pull_seconds},
        {"name": FIXED_LARGE, "pullSeconds": opts.pull_seconds},
        {"name": LOGN_BATCH, **logn},
        {"name": LOGN_ROLLING, **logn},
    ]
    total_nodes = max(opts.small_nodes, opts.large_nodes)
    result: dict[str, Any] = {"options": opts.as_dict(), "k8sClient": scaled_env(opts.time_scale)}
    t0 = time.monotonic()
    with run_stack(
        server.address,
        work_dir / "stack",
        scenario=scenario(opts, images),
        time_scale=opts.time_scale,
        extra_env={**scaled_env(opts.time_scale), "LOG_LEVEL": "WARNING"},
    ) as stack:
        worker_pid = stack.procs["worker"].popen.pid
        with RssSampler(worker_pid) as rss:
            result["fixedSmall"] = await fixed(
                stack, server, opts, opts.small_nodes, FIXED_SMALL, {"bench": "small"}
            )
            result["lognormalBatch"] = await lognormal(stack, server, opts, "batch", LOGN_BATCH)
            result["lognormalRolling"] = await lognormal(
                stack, server, opts, "rolling", LOGN_ROLLING
            )
            if opts.large_nodes:
                result["fixedLarge"] = await fixed(
                    stack, server, opts, opts.large_nodes, FIXED_LARGE, {}
                )
        result["workerPeakRssMiB"] = round(rss.peak_mib, 1)
        result["simNodes"] = total_nodes
    b, r = result["lognormalBatch"], result["lognormalRolling"]
    result["rollingFasterThanBatch"] = round(1 - r["makespanSeconds"] / b["makespanSeconds"], 3)
    result["wallSeconds"] = round(time.monotonic() - t0, 1)
    print(
        f"  rolling is {100 * result['rollingFasterThanBatch']:.0f}% faster than batch; "
        f"worker peak RSS {result['workerPeakRssMiB']} MiB"
    )
    _plots(opts, result, results_dir)
    write_result(NAME, result, results_dir)
    return result


def _plots(opts: Options, result: dict[str, Any], results_dir: Path) -> None:
    pull = opts.pull_seconds / opts.time_scale
    for key, nodes in (("fixedSmall", opts.small_nodes), ("fixedLarge", opts.large_nodes)):
        if key not in result:
            continue
        r = result[key]
        plot_progress(
            results_dir / f"{NAME}-{key}.png",
            f"batch, fixed pull {pull:g}s: {nodes} nodes, batchSize {opts.batch} "
            f"(makespan/ideal {r['makespanOverIdeal']})",
            {"IPS": [tuple(s) for s in r["samples"]]},
            {"ideal: ceil(N/B) x pull": ideal_batch_curve(nodes, opts.batch, pull)},
            total=nodes,
        )
    b, r = result["lognormalBatch"], result["lognormalRolling"]
    bound = max(b["lowerBoundSeconds"], r["lowerBoundSeconds"])
    plot_progress(
        results_dir / f"{NAME}-lognormal.png",
        f"log-normal pulls, {opts.small_nodes} nodes, batchSize {opts.batch}: "
        f"rolling {100 * result['rollingFasterThanBatch']:.0f}% faster",
        {
            f"batch ({b['makespanOverLowerBound']} x bound)": [tuple(s) for s in b["samples"]],
            f"rolling ({r['makespanOverLowerBound']} x bound)": [tuple(s) for s in r["samples"]],
        },
        {"lower bound max(sum t/B, max t)": [(0.0, 0), (bound, opts.small_nodes)]},
        total=opts.small_nodes,
    )


def main() -> int:
    return standalone_main(__doc__ or NAME, bench, Options)


if __name__ == "__main__":
    sys.exit(main())
