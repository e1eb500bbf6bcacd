"""The registry-aware engine measured (issue 16), on a real registry, kubesim and the real engine.

    .venv/bin/python -m bench.registry typo      # bench/results/registry-typo.json
    .venv/bin/python -m bench.registry pacing    # bench/results/registry-pacing.json + .png
    .venv/bin/python -m bench.registry pacing --case aggregate
                                                 # bench/results/registry-pacing-aggregate.*
    .venv/bin/python -m bench.registry pacing --small   # the smoke test: 100 nodes

Everything runs in one process (as the engine's end-to-end tests do): a Temporal dev server, a
real worker (`build_worker`), kubesim with 1,000 nodes whose kubelet pulls from the registry
(`registries:`), and Debian's `docker-registry` with images the bench builds and pushes itself
(tests/activities/registry/regserver.py).

- `typo`: one of 3 images misspelt, on 1,000 nodes: the time from the task's start to `failed`,
  and the Jobs created (kubesim's own counter of Job creates, and a list of the task's Jobs).
- `pacing`: 1,000 nodes, `rolling` with batchSize 100, behind the 429 fault proxy
  (kubesim/ratelimit_proxy.py) answering 429 to 30 % of the clients (per node, redrawn every
  5 s) for a while, from the moment the preflight and listing are done. Three runs: no 429s;
  30 % with the AIMD window; 30 % with a fixed window (the task's `pacing: fixed`: 429s never
  shrink the Jobs in flight, as the engine did before issue 16). Reported: makespan, failed
  nodes, the window over time.
  That is the `per-node` case (`--case per-node`, the default): a per-address quota.
- `pacing --case aggregate`: the same three runs against an aggregate limit: one token bucket
  over all nodes (`per: total`), AGGREGATE_RATE manifest requests per second (a pull makes 3,
  so about 10 pulls per second, well under what batchSize 100 asks for) with a burst of as
  many, for the same period: nodes behind one NAT address sharing Docker Hub's quota, or a
  self-hosted or cloud registry that throttles its total request rate.
kubesim and the engine run time-scaled (TIME_SCALE): a pull of PULL_SECONDS simulated seconds
takes PULL_SECONDS / TIME_SCALE of wall clock, and the kubelet's back-off scales with it. The
proxy's own clock (its 5 s windows and the limit's period) is wall clock.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.jobspec import task_selector
from bench.harness import RESULTS_DIR, write_result
from common.engine import PrewarmInput
from common.models import Pacing, Strategy, TaskSpec, TaskStatus, TaskView
from common.settings import Settings
from common.starting import start_prewarm_workflow
from common.temporal import ALL_SEARCH_ATTRIBUTE_KEYS, QUERY_PROGRESS
from kubesim.ratelimit_proxy import ProxyHandle, start_proxy
from kubesim.testing import SimHandle, start_sim
from tests.activities.registry.regserver import Registry, build_layout, missing_tools

TIME_SCALE = 20.0
PULL_SECONDS = 10.0  # simulated: half a second of wall clock
K8S_QPS, K8S_BURST = 20, 40
AGGREGATE_RATE = 30.0  # manifest requests per second, all nodes together (3 per pull)


@contextmanager
def registry() -> Iterator[Registry]:
    """A plain-HTTP registry on loopback serving team/{single,multi,amd64only}:1."""
    with tempfile.TemporaryDirectory(prefix="ips-bench-registry-") as tmp:
        d = Path(tmp)
        images = {
            "single": build_layout(d / "single", "1", [("linux", "amd64")], index=False),
            "multi": build_layout(
                d / "multi", "1", [("linux", "amd64"), ("linux", "arm64")], index=True
            ),
            "amd64only": build_layout(d / "amd64only", "1", [("linux", "amd64")], index=True),
        }
        reg = Registry(d / "registry")
        reg.start()
        try:
            for name, img in images.items():
                reg.push(img.layout, img.tag, f"team/{name}")
            yield reg
        finally:
            reg.stop()


def scenario(nodes: int, registry_url: str) -> dict[str, Any]:
    return {
        "defaults": {
            "pullSeconds": PULL_SECONDS,
            "pullJitter": 0.1,
            "containerRunSeconds": 0.5,
        },
        "nodeGroups": [{"name": "bench", "count": nodes, "labels": {"bench": "registry"}}],
        "registries": [{"url": registry_url}],
    }


@asynccontextmanager
async def engine(sim: SimHandle) -> AsyncIterator[Client]:
    """A dev server and an in-process worker, its timers and rate limits scaled as kubesim."""
    from worker.main import build_worker

    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=shutil.which("temporal")
        or str(Path(sys.executable).parent / "temporal"),
        search_attributes=ALL_SEARCH_ATTRIBUTE_KEYS,
        dev_server_log_level="error",
    )
    settings = Settings(
        kubeconfig=sim.kubeconfig_path,
        k8s_qps=K8S_QPS * TIME_SCALE,
        k8s_burst=K8S_BURST,
        engine_time_scale=TIME_SCALE,
        metrics_port=0,
        temporal_metrics_port=0,
    )
    try:
        async with await build_worker(env.client, settings, task_queue="bench-registry"):
            yield env.client
    finally:
        await env.shutdown()


async def start(client: Client, spec: TaskSpec) -> Any:
    tid = f"task-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"
    return await start_prewarm_workflow(
        client, "bench-registry", PrewarmInput(task_id=tid, spec=spec, created_at=datetime.now(UTC))
    )


def job_creates(sim: SimHandle) -> int:
    return sum(sim.stats()["requests"].get("create", {}).get("jobs", {}).values())


# --- typo ---------------------------------------------------------------------------------


async def typo(nodes: int, runs: int) -> dict[str, Any]:
    with (
        registry() as reg,
        start_sim(scenario=scenario(nodes, reg.url), time_scale=TIME_SCALE, seed=3) as sim,
    ):
        images = [f"{reg.host}/team/single:1", f"{reg.host}/team/singel:1",
                  f"{reg.host}/team/multi:1"]  # fmt: skip
        results: list[dict[str, Any]] = []
        times: list[float] = []
        async with engine(sim) as client:
            for _ in range(runs):
                before = job_creates(sim)
                t0 = time.monotonic()
                handle = await start(client, TaskSpec(images=images, batch_size=100))
                view: TaskView = await handle.result()
                seconds = time.monotonic() - t0
                times.append(round(seconds, 3))
                jobs = sim.objects("jobs", "default", label_selector=task_selector(view.task_id))
                results.append(
                    {
                        "secondsToFailed": round(seconds, 3),
                        "status": view.status.value,
                        "message": view.message,
                        "jobCreates": job_creates(sim) - before,
                        "jobsOfTask": len(jobs),
                    }
                )
                print(f"  {view.status.value} in {seconds:.2f}s, {len(jobs)} Jobs: {view.message}")
    return {
        "nodes": nodes,
        "images": images,
        "runs": results,
        "secondsToFailedMedian": round(statistics.median(times), 3),
        "secondsToFailedMax": max(times),
        "jobCreatesTotal": sum(r["jobCreates"] for r in results),
        "allFailed": all(r["status"] == TaskStatus.FAILED.value for r in results),
    }


# --- pacing -------------------------------------------------------------------------------


# The two limits measured: the proxy's `Limit` fields (kubesim/ratelimit_proxy.py) and labels.
CASES: dict[str, dict[str, Any]] = {
    "per-node": {
        "limit": {"per": "client", "fraction": 0.3, "window_seconds": 5},
        "labels": ("no 429", "30% 429, AIMD window", "30% 429, fixed window"),
        "title": "429s to 30% of the nodes (per-node quota)",
    },
    "aggregate": {
        "limit": {"per": "total", "rate": AGGREGATE_RATE, "burst": int(AGGREGATE_RATE)},
        "labels": ("no 429", "total limit, AIMD window", "total limit, fixed window"),
        "title": "aggregate limit: {rate:g} manifest requests/s over all nodes",
    },
}


def configs(case: str) -> tuple[tuple[str, bool, bool], ...]:
    """(label, limited, fixed window) for the case's three runs."""
    none, aimd, fixed = CASES[case]["labels"]
    return ((none, False, False), (aimd, True, False), (fixed, True, True))


async def pacing_run(
    label: str,
    nodes: int,
    *,
    limit: dict[str, Any] | None,
    limit_seconds: float,
    fixed_window: bool,
) -> dict[str, Any]:
    with registry() as reg, start_proxy(reg.url, seed=7) as proxy:
        with start_sim(scenario=scenario(nodes, proxy.url), time_scale=TIME_SCALE, seed=3) as sim:
            async with engine(sim) as client:
                pace = Pacing.FIXED if fixed_window else Pacing.ADAPTIVE
                return await _measure(label, sim, proxy, client, nodes, limit, limit_seconds, pace)


async def _measure(
    label: str,
    sim: SimHandle,
    proxy: ProxyHandle,
    client: Client,
    nodes: int,
    limit: dict[str, Any] | None,
    limit_seconds: float,
    pacing: Pacing,
) -> dict[str, Any]:
    spec = TaskSpec(
        images=[f"{proxy.host}/team/multi:1"],
        batch_size=100,
        strategy=Strategy.ROLLING,
        timeout_seconds=1800,
        pacing=pacing,
    )
    t0 = time.monotonic()
    handle = await start(client, spec)
    samples: list[tuple[float, int, int | None]] = []
    limited_at: float | None = None
    while True:
        view: TaskView = await handle.query(QUERY_PROGRESS, result_type=TaskView)
        now = time.monotonic() - t0
        p = view.progress
        done = p.completed_nodes + p.failed_nodes + p.already_warm_nodes
        samples.append((round(now, 2), done, p.in_flight_window))
        if limited_at is None and p.total_nodes > 0 and limit is not None:
            # The preflight and the listing are done: the registry starts limiting now.
            proxy.set_limit(**limit, seconds=limit_seconds)
            limited_at = now
        if view.status.is_final:
            break
        await asyncio.sleep(0.25)
    final: TaskView = await handle.result()
    makespan = time.monotonic() - t0
    stats = proxy.stats()
    windows = [w for _, _, w in samples if w is not None]
    print(
        f"  {label}: {final.status.value} in {makespan:.1f}s, "
        f"{final.progress.failed_nodes} failed, window min {min(windows, default=None)}, "
        f"proxy limited {stats.get('limited')} of {stats.get('manifestRequests')}"
    )
    return {
        "label": label,
        "nodes": nodes,
        "status": final.status.value,
        "makespanSeconds": round(makespan, 2),
        "completed": final.progress.completed_nodes,
        "failed": final.progress.failed_nodes,
        "failureReasons": sorted({d.reason.value for d in final.failed_node_details}),
        "limit": limit,
        "limitFraction": (limit or {}).get("fraction", 0.0),
        "limitSeconds": limit_seconds,
        "limitStartedAt": limited_at,
        "proxy": stats,
        "windowMin": min(windows, default=None),
        "samples": [{"t": t, "done": d, "window": w} for t, d, w in samples],
    }


async def pacing(
    nodes: int, limit_seconds: float, rounds: int, case: str, rate: float | None = None
) -> dict[str, Any]:
    """Each configuration `rounds` times, the order reversed every other round: the machine's
    load drifts (2 shared cores), so one run of each compares little. `rate` replaces the
    aggregate case's AGGREGATE_RATE (and its burst)."""
    runs = []
    limit = dict(CASES[case]["limit"])
    if rate is not None and limit["per"] == "total":
        limit.update(rate=rate, burst=max(1, int(rate)))
    for r in range(rounds):
        for label, limited, fixed in configs(case) if r % 2 == 0 else configs(case)[::-1]:
            run = await pacing_run(
                label,
                nodes,
                limit=limit if limited else None,
                limit_seconds=limit_seconds,
                fixed_window=fixed,
            )
            runs.append({**run, "round": r + 1})
    medians = {
        label: statistics.median(x["makespanSeconds"] for x in runs if x["label"] == label)
        for label, _, _ in configs(case)
    }
    base = medians["no 429"]
    return {
        "case": case,
        "limit": limit,
        "title": CASES[case]["title"].format(**limit),  # the limit as run (`--rate`)
        "nodes": nodes,
        "batchSize": 100,
        "strategy": "rolling",
        "timeScale": TIME_SCALE,
        "pullSecondsSimulated": PULL_SECONDS,
        "rounds": rounds,
        "runs": runs,
        "makespanMedianSeconds": medians,
        "makespanMedianVsNo429": {k: round(v / base, 3) for k, v in medians.items()},
        "failedNodesTotal": {
            label: sum(x["failed"] for x in runs if x["label"] == label)
            for label, _, _ in configs(case)
        },
        "limitedRequests": {
            label: [x["proxy"]["limited"] for x in runs if x["label"] == label]
            for label, _, _ in configs(case)
        },
    }


def plot_pacing(result: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (matplotlib not installed: no plot; `pip install -e '.[bench]'`)")
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), dpi=110, sharex=True)
    colors = {label: f"C{i}" for i, (label, _, _) in enumerate(configs(result["case"]))}
    for run in result["runs"]:
        ts = [s["t"] for s in run["samples"]]
        label = f"{run['label']} (round {run['round']})"
        style = {"color": colors[run["label"]], "linestyle": "-" if run["round"] == 1 else ":"}
        top.step(ts, [s["done"] for s in run["samples"]], where="post", label=label, **style)
        bottom.step(ts, [s["window"] or 0 for s in run["samples"]], where="post",
                    label=label, **style)  # fmt: skip
        if run["limitStartedAt"] is not None:
            end = run["limitStartedAt"] + run["limitSeconds"]
            bottom.axvspan(run["limitStartedAt"], end, alpha=0.04, color="red")
    top.set_ylabel("nodes done")
    top.set_title(f"{result['nodes']} nodes, rolling, batchSize 100: {result['title']}")
    top.legend(loc="lower right", fontsize=8)
    top.grid(alpha=0.3)
    bottom.set_ylabel("in-flight window (Jobs)")
    bottom.set_xlabel("seconds since the start (wall clock); shaded: the 429 period")
    bottom.legend(loc="upper right", fontsize=8)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["typo", "pacing"])
    parser.add_argument("--small", action="store_true", help="100 nodes: a smoke test")
    parser.add_argument("--limit-seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--case", choices=sorted(CASES), default="per-node")
    parser.add_argument(
        "--rate", type=float, help=f"the aggregate case's requests/s (default {AGGREGATE_RATE:g})"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    missing = missing_tools()
    if missing:
        print(f"needs {', '.join(missing)} (installed by .ci/run)")
        return 2
    nodes = 100 if args.small else 1000
    suffix = "-small" if args.small else ""
    if args.what == "typo":
        result = asyncio.run(typo(nodes, runs=5))
        name = f"registry-typo{suffix}"
    else:
        result = asyncio.run(pacing(nodes, args.limit_seconds, args.rounds, args.case, args.rate))
        case = "" if args.case == "per-node" else f"-{args.case}"
        name = f"registry-pacing{case}{suffix}"
        png = plot_pacing(result, args.results_dir / f"{name}.png")
        if png:
            print(f"  plot: {png}")
    print(f"  result: {write_result(name, result, args.results_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
