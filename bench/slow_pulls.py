"""Slow pulls (issue 12): 200 nodes, pulls of 60-300 simulated seconds, time scale 10.

kubesim runs 10 times faster than the wall clock, and so does the engine: ENGINE_TIME_SCALE=10
divides its own timers (the Unschedulable/NotReady grace, the wait past a Job's deadline, the
checks of a Job with no pod, the create retries), and K8S_QPS is 20 x 10 per wall second.
K8S_BURST stays 40: a burst is a number of requests, not a rate, so the simulated API server
sees exactly production's client (20/s, burst 40, per simulated second). The control plane has
its real timings (the Job controller creates pods at QPS 20, burst 30, simulated).

Reported: Kubernetes requests per node (target <= 1.5: one create per node, plus the amortised
lists and watches; at real pull times a loop that polls would spend dozens) and the makespan
of a `rolling` task against its lower bound max(sum t / B, max t), with t the pull times
kubesim really drew (its Pulled events).

    .venv/bin/python -m bench.slow_pulls [--small]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    WORKER_IMAGE,
    RssSampler,
    TemporalServer,
    plot_progress,
    run_stack,
    standalone_main,
    write_result,
)
from bench.makespan import K8S_BURST, K8S_QPS, measured_run, pull_durations

NAME = "slow-pulls"
IMAGE = "registry.example.com/bench/slow-pulls:1"


class Options:
    """The full run, or the smoke test's (`small`: 20 nodes, seconds long)."""

    def __init__(self, small: bool = False) -> None:
        self.small = small
        self.time_scale = 10.0
        self.nodes = 20 if small else 200
        self.batch = 10 if small else 50
        # Log-normal between 60 s and 300 s (simulated): median sqrt(60 x 300) = 134 s,
        # sigma 0.3 puts 99 % of the draws inside; the JSON records the real min and max.
        self.pull_median = 13.4 if small else 134.0
        self.pull_sigma = 0.3
        self.timeout_seconds = 900

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def scenario(opts: Options) -> dict[str, Any]:
    return {
        "defaults": {"pullOverheadSeconds": 0.0, "pullJitter": 0.0, "containerRunSeconds": 0.5},
        "nodeGroups": [
            {
                "name": "slow",
                "count": opts.nodes,
                "labels": {"bench": "slow"},
                "images": [{"name": WORKER_IMAGE}],
            }
        ],
        "images": [
            {"name": WORKER_IMAGE, "size": "2MiB"},
            {"name": IMAGE, "pullSeconds": {"median": opts.pull_median, "sigma": opts.pull_sigma}},
        ],
    }


def engine_env(time_scale: float) -> dict[str, str]:
    return {
        "ENGINE_TIME_SCALE": f"{time_scale:g}",
        "K8S_QPS": f"{K8S_QPS * time_scale:g}",
        "K8S_BURST": str(K8S_BURST),
        "LOG_LEVEL": "WARNING",
    }


async def bench(
    opts: Options, server: TemporalServer, work_dir: Path, results_dir: Path
) -> dict[str, Any]:
    env = engine_env(opts.time_scale)
    result: dict[str, Any] = {"options": opts.as_dict(), "workerEnv": env}
    t0 = time.monotonic()
    spec = {
        "images": [IMAGE],
        "batchSize": opts.batch,
        "strategy": "rolling",
        "nodeSelector": {"bench": "slow"},
        "timeoutSeconds": opts.timeout_seconds,
    }
    with run_stack(
        server.address,
        work_dir / "stack",
        scenario=scenario(opts),
        time_scale=opts.time_scale,
        extra_env=env,
    ) as stack:
        with RssSampler(stack.procs["worker"].popen.pid) as rss:
            run, cost = await measured_run(stack, server, spec)
        simulated = pull_durations(stack, IMAGE)
    pulls = [d / opts.time_scale for d in simulated]
    bound = max(sum(pulls) / opts.batch, max(pulls)) if pulls else float("nan")
    progress = run.view.get("progress", {})
    result.update(
        {
            "nodes": opts.nodes,
            "batchSize": opts.batch,
            "strategy": "rolling",
            "status": run.view.get("status"),
            "progress": progress,
            "pullsSeen": len(pulls),
            "pullSecondsSimulated": {
                "min": round(min(simulated, default=0), 1),
                "median": round(sorted(simulated)[len(simulated) // 2], 1) if simulated else None,
                "max": round(max(simulated, default=0), 1),
            },
            "lowerBoundSeconds": round(bound, 3),
            "makespanSeconds": round(run.makespan, 3),
            "makespanOverLowerBound": round(run.makespan / bound, 3),
            **cost,
            "workerPeakRssMiB": round(rss.peak_mib, 1),
            "taskId": run.task_id,
            "samples": [[round(t, 3), d] for t, d in run.samples],
            "wallSeconds": round(time.monotonic() - t0, 1),
        }
    )
    print(
        f"  slow pulls {opts.nodes}/{opts.batch} rolling: makespan {run.makespan:.1f}s, lower "
        f"bound {bound:.1f}s, ratio {result['makespanOverLowerBound']:.3f}; "
        f"{cost['k8sRequestsPerNode']} k8s requests/node"
    )
    plot_progress(
        results_dir / f"{NAME}.png",
        f"slow pulls ({result['pullSecondsSimulated']['min']:g}-"
        f"{result['pullSecondsSimulated']['max']:g} s simulated, time scale {opts.time_scale:g}): "
        f"{opts.nodes} nodes, rolling {opts.batch}",
        {f"IPS ({result['makespanOverLowerBound']} x bound)": list(run.samples)},
        {"lower bound max(sum t/B, max t)": [(0.0, 0), (bound, opts.nodes)]},
        total=opts.nodes,
    )
    write_result(NAME, result, results_dir)
    return result


def main() -> int:
    return standalone_main(__doc__ or NAME, bench, Options)


if __name__ == "__main__":
    sys.exit(main())
