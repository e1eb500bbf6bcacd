"""The naive baseline: what a user might write instead of IPS, run on the same cluster.

A loop that lists the nodes, creates one Job per node (batch by batch, as the original service
did) and polls each of the batch's Jobs every second until all are done, with no watch. It
creates exactly the pod IPS creates (activities.jobspec.build_job), so the kubelet's work is
the same and only the orchestration differs. IPS runs the same scenario first, on the same
kubesim (a fresh image, the same fixed pull time), and the figures are IPS / naive ratios from
this one run.

"Every second" is one *simulated* second (1/time-scale wall seconds), like every other duration
here; a polling round that takes longer than that simply starts the next one at once.

    .venv/bin/python -m bench.baseline [--small]
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from activities.jobspec import build_job
from bench.harness import (
    WORKER_IMAGE,
    Stack,
    TemporalServer,
    ideal_batch_curve,
    plot_progress,
    run_stack,
    sim_stats,
    standalone_main,
    write_result,
)
from bench.makespan import FIXED_SMALL, Options, fixed, scaled_env, scenario
from common.models import TaskSpec

NAME = "baseline"
NAIVE_IMAGE = "registry.example.com/bench/naive:1"
NAMESPACE = "default"


def naive_prewarm(
    kubeconfig: Path, image: str, batch_size: int, poll_seconds: float, selector: str
) -> dict[str, Any]:
    """The naive loop. Returns its makespan and (seconds, nodes done) samples."""
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    task_id = f"naive-{uuid.uuid4().hex[:8]}"
    spec = TaskSpec(images=[image], batch_size=batch_size)
    t0 = time.monotonic()
    listed = core.list_node(label_selector=selector).items
    nodes = sorted(str(n.metadata.name) for n in listed if n.metadata is not None)
    samples: list[tuple[float, int]] = [(0.0, 0)]
    done = failed = 0
    polls = 0
    for start in range(0, len(nodes), batch_size):
        names = []
        for node in nodes[start : start + batch_size]:
            body = build_job(
                task_id=task_id,
                unit=start // batch_size + 1,
                node=node,
                spec=spec,
                worker_image=WORKER_IMAGE,
                ttl_seconds=600,
                priority_class_name=None,
            )
            batch.create_namespaced_job(NAMESPACE, body)  # type: ignore[arg-type]
            names.append(body["metadata"]["name"])
        pending = set(names)
        while pending:
            round_start = time.monotonic()
            for name in sorted(pending):
                job = batch.read_namespaced_job_status(name, NAMESPACE)
                polls += 1
                status = job.status
                if status is not None and (status.succeeded or status.failed):
                    pending.discard(name)
                    done += 1
                    failed += 1 if status.failed else 0
                    samples.append((time.monotonic() - t0, done))
            time.sleep(max(0.0, poll_seconds - (time.monotonic() - round_start)))
    api.close()
    return {
        "nodes": len(nodes),
        "failed": failed,
        "jobPolls": polls,
        "makespanSeconds": round(time.monotonic() - t0, 3),
        "samples": [[round(t, 3), d] for t, d in samples],
    }


async def bench(
    opts: Options, server: TemporalServer, work_dir: Path, results_dir: Path
) -> dict[str, Any]:
    images = [
        {"name": FIXED_SMALL, "pullSeconds": opts.pull_seconds},
        {"name": NAIVE_IMAGE, "pullSeconds": opts.pull_seconds},
    ]
    only_small = Options(small=opts.small)
    only_small.large_nodes = 0
    result: dict[str, Any] = {"options": opts.as_dict(), "k8sClient": scaled_env(opts.time_scale)}
    with run_stack(
        server.address,
        work_dir / "baseline-stack",
        scenario=scenario(only_small, images),
        time_scale=opts.time_scale,
        extra_env={**scaled_env(opts.time_scale), "LOG_LEVEL": "WARNING"},
    ) as stack:
        ips = await fixed(stack, server, opts, opts.small_nodes, FIXED_SMALL, {"bench": "small"})
        naive = await _naive(stack, opts)
    result["ips"], result["naive"] = ips, naive
    result["requestsRatio"] = round(ips["k8sRequests"] / naive["k8sRequests"], 4)
    result["makespanRatio"] = round(ips["makespanSeconds"] / naive["makespanSeconds"], 3)
    print(
        f"  naive: {naive['k8sRequests']} k8s requests ({naive['k8sRequestsPerNode']}/node), "
        f"makespan {naive['makespanSeconds']:.1f}s; IPS/naive: requests "
        f"{result['requestsRatio']}, makespan {result['makespanRatio']}"
    )
    pull = opts.pull_seconds / opts.time_scale
    plot_progress(
        results_dir / f"{NAME}.png",
        f"IPS vs a naive create-and-poll loop: {opts.small_nodes} nodes, batchSize {opts.batch}, "
        f"pull {pull:g}s",
        {
            f"IPS ({ips['k8sRequests']} requests)": [tuple(s) for s in ips["samples"]],
            f"naive ({naive['k8sRequests']} requests)": [tuple(s) for s in naive["samples"]],
        },
        {"ideal: ceil(N/B) x pull": ideal_batch_curve(opts.small_nodes, opts.batch, pull)},
        total=opts.small_nodes,
    )
    write_result(NAME, result, results_dir)
    return result


async def _naive(stack: Stack, opts: Options) -> dict[str, Any]:
    before = sim_stats(stack)
    out = await asyncio.to_thread(
        naive_prewarm,
        stack.kubeconfig,
        NAIVE_IMAGE,
        opts.batch,
        1.0 / opts.time_scale,
        "bench=small",
    )
    await asyncio.sleep(1.0)
    after = sim_stats(stack)
    requests = int(after["requestsTotal"]) - int(before["requestsTotal"])
    out["k8sRequests"] = requests
    out["k8sRequestsPerNode"] = round(requests / max(1, out["nodes"]), 3)
    out["pollSecondsWall"] = 1.0 / opts.time_scale
    return out


def main() -> int:
    return standalone_main(__doc__ or NAME, bench, Options)


if __name__ == "__main__":
    sys.exit(main())
