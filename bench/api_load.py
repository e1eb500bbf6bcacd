"""The API under load, on the real stack: reads while tasks run, then task creation throughput.

1. Ten tasks run (each pulls a fresh image on every node, batch by batch) while twenty
   concurrent clients loop on `GET /api/v1/tasks/{id}` (a running task: the progress query) and
   `GET /api/v1/tasks?limit=100` (visibility only), one list for every three gets: first each
   client once a second (operators running `ips watch`), then with no pause at all (saturated).
   Reported: p50/p99 latency and throughput of each.
2. Creation: twenty concurrent clients POST tasks until the first error or the time limit
   (60 s). The tasks select no node (they end `failed` at once), so the worker keeps up and the
   figure is the API's and Temporal's. Reported: successful POSTs per second.

Latency is measured by the client (httpx, keep-alive), so it includes the HTTP stack. The client
runs on the same 2 cores as the API, the worker, kubesim and Temporal.

    .venv/bin/python -m bench.api_load [--small]
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    WORKER_IMAGE,
    TemporalServer,
    percentile,
    plot_progress,
    run_stack,
    standalone_main,
    write_result,
)
from bench.makespan import scaled_env

NAME = "api-load"
TASKS = "/api/v1/tasks"
CLIENTS = 20
RUNNING_TASKS = 10
LIST_EVERY = 4  # one list for every three gets
WATCH_PACE = 1.0  # seconds between one client's requests, as `ips watch` refreshes


class Options:
    def __init__(self, small: bool = False) -> None:
        self.small = small
        self.time_scale = 10.0
        self.nodes = 20 if small else 100
        self.batch = 5 if small else 10
        self.pull_seconds = 20.0 if small else 40.0  # simulated: tasks outlive the read phase
        self.read_seconds = 2.0 if small else 16.0
        self.create_seconds = 1.0 if small else 60.0

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def _scenario(opts: Options, images: list[str]) -> dict[str, Any]:
    return {
        "defaults": {"pullOverheadSeconds": 0.0, "pullJitter": 0.0, "containerRunSeconds": 0.0},
        "nodeGroups": [
            {
                "name": "api",
                "count": opts.nodes,
                "labels": {"bench": "api"},
                "images": [{"name": WORKER_IMAGE}],
            },
        ],
        "images": [{"name": i, "pullSeconds": opts.pull_seconds} for i in images],
    }


def _stats(latencies: list[float], seconds: float) -> dict[str, Any]:
    return {
        "requests": len(latencies),
        "p50ms": round(1000 * percentile(latencies, 50), 2),
        "p99ms": round(1000 * percentile(latencies, 99), 2),
        "maxms": round(1000 * max(latencies, default=0.0), 2),
        "perSecond": round(len(latencies) / seconds, 1) if seconds else 0.0,
    }


def _cache_status(header: str | None) -> str:
    """`hit`, `collapsed` (joined a lookup in flight) or `miss`, from the API's Cache-Status
    (RFC 9211, docs/api.md "Shared reads"); `none` from an API that does not send it."""
    if header is None:
        return "none"
    params = {p.strip().split("=")[0] for p in header.split(";")[1:]}
    return "hit" if "hit" in params else "collapsed" if "collapsed" in params else "miss"


async def read_load(
    http: httpx.AsyncClient, task_ids: list[str], seconds: float, pace: float = 0.0
) -> dict[str, Any]:
    """Twenty clients, each sending its next request `pace` seconds after the previous one
    started (0: at once, a closed loop that saturates the stack)."""
    gets: list[float] = []
    lists: list[float] = []
    errors: dict[str, int] = {}
    # How the API answered (its Cache-Status header: hit, fwd=miss; collapsed, fwd=miss).
    cache: dict[str, dict[str, int]] = {"get": {}, "list": {}}
    running_seen = 0
    rng = random.Random(8)
    stop_at = time.monotonic() + seconds

    async def client(n: int) -> None:
        nonlocal running_seen
        i = n
        if pace:  # watchers are not in step: each starts at its own moment within the pace
            await asyncio.sleep(rng.uniform(0.0, pace))
        while time.monotonic() < stop_at:
            i += 1
            started = time.monotonic()
            is_list = i % LIST_EVERY == 0
            path = f"{TASKS}?limit=100" if is_list else f"{TASKS}/{rng.choice(task_ids)}"
            t0 = time.perf_counter()
            response = await http.get(path)
            took = time.perf_counter() - t0
            if response.status_code != httpx.codes.OK:
                errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
            else:
                (lists if is_list else gets).append(took)
                how = _cache_status(response.headers.get("cache-status"))
                counts = cache["list" if is_list else "get"]
                counts[how] = counts.get(how, 0) + 1
                if not is_list and response.json()["status"] == "running":
                    running_seen += 1
            if pace:
                await asyncio.sleep(max(0.0, pace - (time.monotonic() - started)))

    t0 = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    took = time.monotonic() - t0
    return {
        "clients": CLIENTS,
        "paceSeconds": pace,
        "perSecond": round((len(gets) + len(lists)) / took, 1) if took else 0.0,
        "seconds": round(took, 2),
        "get": {**_stats(gets, took), "answeredRunning": running_seen, "cache": cache["get"]},
        "list": {**_stats(lists, took), "cache": cache["list"]},
        "errors": errors,
        "getLatenciesMs": [round(1000 * x, 2) for x in gets[:: max(1, len(gets) // 400)]],
    }


async def create_load(http: httpx.AsyncClient, seconds: float) -> dict[str, Any]:
    """POSTs until the first error or `seconds`; tasks that select no node."""
    created: list[tuple[float, float]] = []  # (seconds since start, latency)
    first_error: dict[str, Any] | None = None
    t_start = time.monotonic()
    stop = asyncio.Event()
    body = {
        "images": ["registry.example.com/bench/create-load:1"],
        "batchSize": 10,
        "nodeSelector": {"bench": f"none-{uuid.uuid4().hex[:6]}"},
    }

    async def client() -> None:
        nonlocal first_error
        while not stop.is_set() and time.monotonic() - t_start < seconds:
            t0 = time.perf_counter()
            try:
                response = await http.post(TASKS, json=body)
            except httpx.HTTPError as err:
                first_error = first_error or {"error": repr(err)}
                stop.set()
                return
            took = time.perf_counter() - t0
            if response.status_code != httpx.codes.CREATED:
                first_error = first_error or {
                    "status": response.status_code,
                    "body": response.text[:300],
                    "afterSeconds": round(time.monotonic() - t_start, 2),
                }
                stop.set()
                return
            created.append((time.monotonic() - t_start, took))

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    took = time.monotonic() - t_start
    lat = [c[1] for c in created]
    return {
        "clients": CLIENTS,
        "seconds": round(took, 2),
        "created": len(created),
        "perSecond": round(len(created) / took, 1),
        "p50ms": round(1000 * percentile(lat, 50), 2),
        "p99ms": round(1000 * percentile(lat, 99), 2),
        "firstError": first_error,
        "timeline": [round(c[0], 2) for c in created[:: max(1, len(created) // 400)]],
    }


async def bench(
    opts: Options, server: TemporalServer, work_dir: Path, results_dir: Path
) -> dict[str, Any]:
    images = [f"registry.example.com/bench/api-{i}:1" for i in range(RUNNING_TASKS)]
    result: dict[str, Any] = {"options": opts.as_dict()}
    with run_stack(
        server.address,
        work_dir / "api-stack",
        scenario=_scenario(opts, images),
        time_scale=opts.time_scale,
        extra_env={**scaled_env(opts.time_scale), "LOG_LEVEL": "WARNING"},
    ) as stack:
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=stack.url, timeout=30, limits=limits) as http:
            task_ids = []
            for image in images:
                response = await http.post(TASKS, json={"images": [image], "batchSize": opts.batch})
                response.raise_for_status()
                task_ids.append(response.json()["taskId"])
            # Until every task is running (listed its nodes, first batch in flight).
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                views = [(await http.get(f"{TASKS}/{i}")).json() for i in task_ids]
                if all(v["status"] == "running" for v in views):
                    break
                await asyncio.sleep(0.3)
            # As operators watching (`ips watch` refreshes once a second), then saturated.
            result["read"] = await read_load(http, task_ids, opts.read_seconds, pace=WATCH_PACE)
            result["readSaturated"] = await read_load(http, task_ids, opts.read_seconds / 2)
            still = [(await http.get(f"{TASKS}/{i}")).json()["status"] for i in task_ids]
            result["readSaturated"]["tasksStillRunningAfter"] = still.count("running")
            for i in task_ids:  # free the worker for the creation phase
                await http.delete(f"{TASKS}/{i}")
            result["create"] = await create_load(http, opts.create_seconds)
    c = result["create"]
    for key, title in (("read", "20 clients, 1 req/s each"), ("readSaturated", "saturated")):
        r = result[key]
        print(
            f"  {title}: GET task p50 {r['get']['p50ms']} ms, p99 {r['get']['p99ms']} ms, "
            f"{r['get']['perSecond']}/s; list?limit=100 p50 {r['list']['p50ms']} ms, "
            f"p99 {r['list']['p99ms']} ms, {r['list']['perSecond']}/s; errors {r['errors']}"
        )
    print(
        f"  POST: {c['perSecond']}/s ({c['created']} in {c['seconds']}s, "
        f"first error: {c['firstError']})"
    )
    counts = [(t, i + 1) for i, t in enumerate(c["timeline"])]
    step = max(1, c["created"] // max(1, len(c["timeline"])))
    plot_progress(
        results_dir / f"{NAME}.png",
        f"task creation: {c['perSecond']}/s with {CLIENTS} clients",
        {"tasks created (sampled)": [(t, n * step) for t, n in counts]},
        {"30/s target": [(0.0, 0), (c["seconds"], int(30 * c["seconds"]))]},
        ylabel="tasks created",
    )
    write_result(NAME, result, results_dir)
    return result


def main() -> int:
    return standalone_main(__doc__ or NAME, bench, Options)


if __name__ == "__main__":
    sys.exit(main())
