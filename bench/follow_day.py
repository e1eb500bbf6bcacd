"""Follow mode over a simulated day (issue 15): nodes join and leave like an autoscaler's.

kubesim runs at `--time-scale` (default 500: a day in under 3 minutes) with an `autoscaler:`
schedule (1,000 joins a day, each Ready 30 s after joining, its startup taint gone 10 s later,
leaving 2 h after joining); one task follows the `compute` pool for the whole day. Reported:

- Temporal history events per joined node (all runs), the most events in one run, the runs;
- the largest follow unit input (it carries the nodes the task has, `covered`) and the largest
  continue-as-new input (the state: resourceVersion, counters, `covered`);
- Kubernetes requests per joined node (kubesim's counters, beyond the first sweep);
- how many joined nodes got their image (pulls per joined node: exactly one each).

    .venv/bin/python -m bench.follow_day [--joins 1000] [--time-scale 500]

Not part of `make bench` yet; the figures go to bench/results/follow-day.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from common.engine import ACTIVITY_FOLLOW_NODES, PrewarmInput
from common.models import FollowSpec, TaskSpec, TaskView
from common.settings import Settings
from common.starting import start_prewarm_workflow
from common.temporal import ALL_SEARCH_ATTRIBUTE_KEYS
from kubesim.testing import start_sim
from worker.main import build_worker

IMAGE = "registry.example.com/bench/follow:1"
DAY = 86400.0
RESULTS = Path(__file__).parent / "results" / "follow-day.json"


def scenario(joins: int) -> dict[str, Any]:
    return {
        "defaults": {"pullOverheadSeconds": 0.5, "containerRunSeconds": 0.5},
        "nodeGroups": [{"name": "compute", "count": 20, "labels": {"pool": "compute"}}],
        "images": [{"name": IMAGE, "size": "200MiB", "pullSeconds": 20}],
        "namespaces": ["default", "kube-system"],
        "autoscaler": {
            "group": "compute",
            "joinEverySeconds": DAY / joins,
            "maxJoins": joins,
            "readyAfterSeconds": 30,
            "taintsRemovedAfterSeconds": 10,
            "lifetimeSeconds": 7200,
        },
    }


async def history_cost(client: Client, handle: WorkflowHandle[Any, TaskView]) -> dict[str, int]:
    runs: list[int] = []
    rounds, round_bytes, carried_bytes = 0, 0, 0
    run_id: str | None = handle.first_execution_run_id
    while run_id is not None:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        runs.append(len(history.events))
        for e in history.events:
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attrs = e.activity_task_scheduled_event_attributes
                if attrs.activity_type.name == ACTIVITY_FOLLOW_NODES:
                    rounds += 1
                    round_bytes = max(round_bytes, attrs.input.ByteSize())
        last = history.events[-1].workflow_execution_continued_as_new_event_attributes
        run_id = last.new_execution_run_id or None
        if run_id is not None:
            carried_bytes = max(carried_bytes, last.input.ByteSize())
    return {
        "events": sum(runs),
        "runs": len(runs),
        "max_run_events": max(runs),
        "rounds": rounds,
        "max_round_input_bytes": round_bytes,
        "max_continue_as_new_input_bytes": carried_bytes,
    }


def requests(stats: dict[str, Any]) -> int:
    return int(stats.get("requestsTotal") or 0)


async def main(joins: int, time_scale: float) -> dict[str, Any]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=shutil.which("temporal"),
        search_attributes=ALL_SEARCH_ATTRIBUTE_KEYS,
        dev_server_log_level="error",
    )
    try:
        with start_sim(nodes=None, scenario=scenario(joins), time_scale=time_scale) as sim:
            settings = Settings(
                kubeconfig=sim.kubeconfig_path,
                k8s_qps=min(10000.0, 20.0 * time_scale),
                k8s_burst=40,
                metrics_port=0,
                temporal_metrics_port=0,
                engine_time_scale=time_scale,
                job_ttl_seconds=600,
            )
            async with await build_worker(env.client, settings, task_queue="follow-day"):
                spec = TaskSpec(
                    images=[IMAGE],
                    batch_size=10,
                    node_selector={"pool": "compute"},
                    follow=FollowSpec(duration_seconds=max(10, round(DAY / time_scale) + 15)),
                )
                stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
                started = time.monotonic()
                handle = await start_prewarm_workflow(
                    env.client,
                    "follow-day",
                    PrewarmInput(
                        task_id=f"task-{stamp}-00da7000", spec=spec, created_at=datetime.now(UTC)
                    ),
                )
                view = await handle.result()
                wall = time.monotonic() - started
                cost = await history_cost(env.client, handle)
                stats = sim.stats()
                report = sim.autoscaler_report()
                joined = [n["name"] for n in report.get("nodes", [])]
                counts = sim.pull_counts()
                pulled = sum(1 for n in joined if counts.get((n, IMAGE), 0) >= 1)
                twice = sum(1 for n in joined if counts.get((n, IMAGE), 0) > 1)
    finally:
        await env.shutdown()
    added = view.following.nodes_added if view.following else 0
    result = {
        "joins": joins,
        "time_scale": time_scale,
        "wall_seconds": round(wall, 1),
        "status": view.status.value,
        "nodes_added": added,
        "joined_nodes": len(joined),
        "joined_nodes_pulled": pulled,
        "joined_nodes_pulled_twice": twice,
        "total_nodes": view.progress.total_nodes,
        "completed_nodes": view.progress.completed_nodes,
        "failed_nodes": view.progress.failed_nodes,
        **cost,
        "events_per_joined_node": round(cost["events"] / max(added, 1), 2),
        "k8s_requests": requests(stats),
        "k8s_requests_per_joined_node": round(requests(stats) / max(added, 1), 2),
    }
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=1000)
    parser.add_argument("--time-scale", type=float, default=500.0)
    args = parser.parse_args()
    out = asyncio.run(main(args.joins, args.time_scale))
    print(json.dumps(out, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    sys.exit(0)
