"""Follow mode (issue 15, "Measured"): nodes join over time and one follow-mode task warms them.

Two phases, each on the real stack (`ips sim`, `ips worker`, `ips api` as subprocesses) with
kubesim's autoscaler (kubesim/autoscaler.py: a node joins NotReady with the not-ready and the
cloud provider's startup taints, turns Ready, loses its startup taint, leaves later):

1. **Latency**, at time scale 1 (the wall clock is the cluster's, so the worker's and Temporal's
   own delays count as they would in production). Once the task's phase turns `following` (the
   first sweep is over), `latencyJoins` nodes join one by one (the bench calls kubesim's
   `POST /kubesim/autoscaler/join`, `latencyJoinEvery` s apart); for each, the time from its
   turning Ready to its image being present (the end of its first pull, kubesim's
   `GET /kubesim/pulls` `firstAt`, on the clock of the autoscaler report's `readyAt`), p50 and
   p99, against the pull time (fixed: `pullSeconds`). The overhead is latency - pull; target
   <= 5 s, everything included. Its startup taint goes `taintsRemovedAfterSeconds` after Ready;
   the task's pods do not tolerate it, so that wait is in the latency too.
   Reported apart (`duringSweep`): `sweepJoins` nodes that join while the first sweep runs. They
   wait for it (follow mode starts after the first sweep, and the sweep holds batchSize pulls in
   flight), so their Ready-to-present time is the sweep's remaining time plus a pull; what the
   engine adds is the time from the phase turning `following` to their pull's start.
2. **A simulated day**, at time scale 500 (the engine's timers scaled too, ENGINE_TIME_SCALE):
   1,000 nodes join (one every 86.4 s), each Ready 30 s after joining, untainted 10 s later,
   leaving 2 h after joining. Reported: Kubernetes requests per joined node after the first
   sweep (target <= 2), Temporal history events per joined node and the most in one run (all
   runs of the continue-as-new chain), and the worker's RSS over the day (flat: the growth
   between the second quarter of the day and the last).

    .venv/bin/python -m bench.follow [--small]

Writes bench/results/follow.json and follow.png (RSS over the day, the latency distribution).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    WORKER_IMAGE,
    RssSampler,
    TemporalServer,
    follow_payloads,
    history_stats,
    percentile,
    run_stack,
    sim_stats,
    sim_url,
    standalone_main,
    write_result,
)
from bench.slow_pulls import engine_env
from common import temporal as t
from tests.stack import Stack

NAME = "follow"
IMAGE = "registry.example.com/bench/follow:1"


class Options:
    """The full run, or the smoke test's (`small`: a few joins, about a minute)."""

    def __init__(self, small: bool = False) -> None:
        self.small = small
        self.base_nodes = 5 if small else 20
        self.batch = 10
        self.pull_seconds = 5.0 if small else 20.0
        # Phase 1: latency at time scale 1.
        self.latency_joins = 3 if small else 20
        # Joins 8 s apart: each node is taken and its Job created alone (no gathering).
        self.latency_join_every = 8.0
        self.sweep_joins = 1 if small else 3  # joined while the first sweep runs (apart)
        self.latency_ready_after = 2.0
        self.latency_untaint_after = 1.0
        # Phase 2: the simulated day.
        self.day_seconds = 1800.0 if small else 86400.0
        self.day_joins = 10 if small else 1000
        self.day_time_scale = 60.0 if small else 500.0
        self.ready_after = 30.0
        self.untaint_after = 10.0
        self.lifetime = 600.0 if small else 7200.0

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def scenario(opts: Options, autoscaler: dict[str, Any]) -> dict[str, Any]:
    return {
        "defaults": {"pullOverheadSeconds": 0.0, "pullJitter": 0.0, "containerRunSeconds": 0.5},
        "nodeGroups": [
            {
                "name": "pool",
                "count": opts.base_nodes,
                "labels": {"bench": "follow"},
                "images": [{"name": WORKER_IMAGE}],
            }
        ],
        # Joined nodes hold nothing: the worker image's pull (2 MiB at 100 MB/s) comes first.
        "images": [
            {"name": WORKER_IMAGE, "size": "2MiB"},
            {"name": IMAGE, "pullSeconds": opts.pull_seconds},
        ],
        "autoscaler": {"group": "pool", "readyJitter": 0, "lifetimeJitter": 0, **autoscaler},
    }


async def follow_task(
    stack: Stack,
    server: TemporalServer,
    duration: float,
    on_following: asyncio.Event | None = None,
    poll: float = 1.0,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """POST one follow task over the pool; returns (final view, kubesim stats when the first
    sweep ended, its history stats). `on_following` is set when the phase turns `following`."""
    spec = {
        "images": [IMAGE],
        "batchSize": 10,
        "nodeSelector": {"bench": "follow"},
        "follow": {"durationSeconds": max(10, round(duration))},
    }
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        response = await http.post("/api/v1/tasks", json=spec)
        response.raise_for_status()
        task_id = response.json()["taskId"]
    client = await server.client()
    handle = client.get_workflow_handle(task_id)
    swept: dict[str, Any] = {}
    view: dict[str, Any] = {}
    deadline = time.monotonic() + duration + 600
    while time.monotonic() < deadline:
        try:
            view = await handle.query(t.QUERY_PROGRESS, result_type=dict)
        except Exception:  # not started yet, or between runs (continue-as-new)
            view = {}
        if not swept and view.get("phase") == "following":
            seen = time.time()  # the one record of the moment: `followingWall`
            if on_following is not None:
                on_following.set()
            swept = {**await asyncio.to_thread(sim_stats, stack), "followingWall": seen}
        if view.get("status") in ("completed", "failed", "cancelled"):
            break
        await asyncio.sleep(poll)
    view["taskId"] = task_id
    return view, swept, await history_stats(client, task_id)


def _control(stack: Stack, path: str) -> Any:
    response = httpx.get(f"{sim_url(stack)}{path}", timeout=60)
    response.raise_for_status()
    return response.json()


def present_after(stack: Stack) -> list[dict[str, Any]]:
    """Per joined node: Ready and untainted times, and when its image was first present."""
    joined = _control(stack, "/kubesim/autoscaler")["nodes"]
    first = {p["node"]: p["firstAt"] for p in _control(stack, "/kubesim/pulls")
             if p["image"] == IMAGE}  # fmt: skip
    return [{**n, "presentAt": first.get(n["name"])} for n in joined if n["readyAt"] is not None]


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": round(percentile(values, 50), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values), 2),
    }


def _join(stack: Stack, opts: Options) -> None:
    """One node joins now, like an autoscaler's (kubesim's control endpoint)."""
    body = {
        "count": 1,
        "group": "pool",
        "readyAfterSeconds": opts.latency_ready_after,
        "taintsRemovedAfterSeconds": opts.latency_untaint_after,
    }
    response = httpx.post(f"{sim_url(stack)}/kubesim/autoscaler/join", json=body, timeout=30)
    response.raise_for_status()


async def _joins(stack: Stack, opts: Options, following: asyncio.Event) -> set[str]:
    """`sweepJoins` nodes during the first sweep, then, once the phase is `following`,
    `latencyJoins` nodes `latencyJoinEvery` s apart. Returns the names of the nodes that joined
    before."""
    await asyncio.sleep(2.0)  # the task has started its sweep
    for _ in range(opts.sweep_joins):
        await asyncio.to_thread(_join, stack, opts)
    during = {n["name"] for n in _control(stack, "/kubesim/autoscaler")["nodes"]}
    await following.wait()
    for i in range(opts.latency_joins):
        if i:
            await asyncio.sleep(opts.latency_join_every)
        await asyncio.to_thread(_join, stack, opts)
    return during


async def latency_phase(opts: Options, server: TemporalServer, work: Path) -> dict[str, Any]:
    # No join schedule: the bench joins the nodes itself (`_joins`), after the sweep.
    autoscaler = {"readyAfterSeconds": opts.latency_ready_after,
                  "taintsRemovedAfterSeconds": opts.latency_untaint_after}  # fmt: skip
    duration = (
        opts.latency_joins * opts.latency_join_every + opts.latency_ready_after
        + opts.latency_untaint_after + opts.pull_seconds + 20
    )  # fmt: skip
    with run_stack(
        server.address, work, scenario=scenario(opts, autoscaler), time_scale=1.0,
        extra_env=engine_env(1.0),
    ) as stack:  # fmt: skip
        following = asyncio.Event()
        joins = asyncio.create_task(_joins(stack, opts, following))
        view, at_following, _ = await follow_task(stack, server, duration, following, poll=0.25)
        if not following.is_set():
            joins.cancel()
            raise RuntimeError(f"the follow task never reached its follow phase: {view}")
        during = await joins
        since = float(at_following["followingWall"])
        nodes = present_after(stack)
    after = [n for n in nodes if n["name"] not in during and n["presentAt"] is not None]
    ready = [n["presentAt"] - n["readyAt"] for n in after]
    untainted = [n["presentAt"] - n["untaintedAt"] for n in after
                 if n["untaintedAt"] is not None]  # fmt: skip
    swept = [n for n in nodes if n["name"] in during and n["presentAt"] is not None]
    # Time scale 1: a node's wall clock is its simulated one plus (readyWall - readyAt).
    pull_start = [n["presentAt"] + n["readyWall"] - n["readyAt"] - opts.pull_seconds
                  for n in swept]  # fmt: skip
    return {
        "status": view.get("status"),
        "joined": len(nodes) - len(during),
        "warmed": len(after),
        "readyToPresentSeconds": _spread(ready),
        "untaintedToPresentSeconds": _spread(untainted),
        "overheadSeconds": _spread([x - opts.pull_seconds for x in ready]),
        "samples": sorted(round(x, 2) for x in ready),
        "duringSweep": {
            "joined": len(during),
            "warmed": len(swept),
            "readyToPresentSeconds": _spread([n["presentAt"] - n["readyAt"] for n in swept]),
            # From the phase seen turning `following` (polled every 0.25 s) to the pull's start.
            "followingToPullStartSeconds": _spread([s - since for s in pull_start]),
        },
    }


def _flatness(points: list[tuple[float, float]]) -> dict[str, float | None]:
    """RSS medians over the day's quarters: flat means the last is close to the second (the
    first holds start-up)."""
    if len(points) < 8:
        return {"q2MedianMiB": None, "q4MedianMiB": None, "growthMiB": None}
    rss = [m for _, m in points]
    q = len(rss) // 4
    q2, q4 = statistics.median(rss[q : 2 * q]), statistics.median(rss[3 * q :])
    return {"q2MedianMiB": q2, "q4MedianMiB": q4, "growthMiB": round(q4 - q2, 1)}


async def day_phase(opts: Options, server: TemporalServer, work: Path) -> dict[str, Any]:
    scale = opts.day_time_scale
    autoscaler = {
        "joinEverySeconds": opts.day_seconds / opts.day_joins,
        "maxJoins": opts.day_joins,
        "startSeconds": 60.0,
        "readyAfterSeconds": opts.ready_after,
        "taintsRemovedAfterSeconds": opts.untaint_after,
        "lifetimeSeconds": opts.lifetime,
    }
    duration = opts.day_seconds / scale + 15
    with run_stack(
        server.address, work, scenario=scenario(opts, autoscaler), time_scale=scale,
        extra_env=engine_env(scale),
    ) as stack:  # fmt: skip
        with RssSampler(stack.procs["worker"].popen.pid, interval=1.0) as rss:
            view, swept, history = await follow_task(stack, server, duration)
        end = await asyncio.to_thread(sim_stats, stack)
        nodes = present_after(stack)
        pulls = await asyncio.to_thread(_control, stack, "/kubesim/pulls")
    payloads = await follow_payloads(await server.client(), view["taskId"])
    joined = len(nodes)
    warmed = [n for n in nodes if n["presentAt"] is not None]
    twice = {p["node"] for p in pulls if p["image"] == IMAGE and p["count"] > 1}
    after_sweep = int(end["requestsTotal"]) - int(swept.get("requestsTotal", 0))
    # Nodes Ready once the task follows (before, they waited for the task or its sweep).
    since = float(swept.get("followingWall", 0.0))
    sim_latency = [(n["presentAt"] - n["readyAt"]) for n in warmed if n["readyWall"] >= since]
    return {
        "status": view.get("status"),
        "following": view.get("following"),
        "joined": joined,
        "warmed": len(warmed),
        # Each joined node pulls the image once: a second pull is a node warmed twice.
        "pulledTwice": sum(1 for n in nodes if n["name"] in twice),
        "k8sRequestsAfterSweep": after_sweep,
        "k8sRequestsPerJoinedNode": round(after_sweep / max(joined, 1), 3),
        "historyEvents": history["events"],
        "historyEventsPerJoinedNode": round(history["events"] / max(joined, 1), 2),
        "maxEventsPerRun": history["maxEventsPerRun"],
        "runs": history["runs"],
        # The follow units and the largest inputs in the history: a unit's (the nodes the task
        # has) and a continue-as-new's (the state carried to the next run).
        **payloads,
        "workerRss": {
            **_flatness(rss.points),
            "peakMiB": max((m for _, m in rss.points), default=None),
        },
        "rssSamples": rss.points,
        # At time scale 500 every wall second of the worker's or Temporal's is 500 simulated
        # seconds: this is the day's shape, not the latency (phase 1 measures that).
        "readyToPresentSimulatedSeconds": _spread(sim_latency),
    }


def plot(path: Path, result: dict[str, Any], opts: Options) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"  (matplotlib not installed: no plot {path.name}; `pip install -e '.[bench]'`)")
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    points = result["day"]["rssSamples"]
    if points:
        hours = [s * opts.day_time_scale / 3600 for s, _ in points]
        left.plot(hours, [m for _, m in points], linewidth=1.4)
    left.set_xlabel("simulated hours")
    left.set_ylabel("worker RSS (MiB)")
    left.set_title(f"worker memory, {opts.day_joins} joins and leaves over a simulated day")
    left.grid(alpha=0.3)
    samples = result["latency"]["samples"]
    if samples:
        right.step(samples, [(i + 1) / len(samples) for i in range(len(samples))], where="post")
    right.axvline(opts.pull_seconds, color="grey", linestyle="--", label="pull time")
    right.axvline(opts.pull_seconds + 5, color="red", linestyle=":", label="pull + 5 s target")
    right.set_xlabel("seconds from Ready to the image present (time scale 1)")
    right.set_ylabel("fraction of joined nodes")
    right.set_title("Ready to warm")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


async def bench(
    opts: Options, server: TemporalServer, work_dir: Path, results_dir: Path
) -> dict[str, Any]:
    t0 = time.monotonic()
    latency = await latency_phase(opts, server, work_dir / "latency")
    day = await day_phase(opts, server, work_dir / "day")
    result = {
        "options": opts.as_dict(),
        "latency": latency,
        "day": day,
        "wallSeconds": round(time.monotonic() - t0, 1),
    }
    lat = latency["readyToPresentSeconds"]
    print(
        f"  follow: Ready -> present p50 {lat['p50']} s, p99 {lat['p99']} s (pull "
        f"{opts.pull_seconds:g} s); {day['k8sRequestsPerJoinedNode']} k8s requests and "
        f"{day['historyEventsPerJoinedNode']} history events per joined node, at most "
        f"{day['maxEventsPerRun']} in a run; RSS growth {day['workerRss']['growthMiB']} MiB"
    )
    await asyncio.to_thread(results_dir.mkdir, parents=True, exist_ok=True)
    plot(results_dir / f"{NAME}.png", result, opts)
    write_result(NAME, result, results_dir)
    return result


def main() -> int:
    return standalone_main(__doc__ or NAME, bench, Options)


if __name__ == "__main__":
    sys.exit(main())
