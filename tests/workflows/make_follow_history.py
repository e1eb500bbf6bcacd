"""Regenerate the committed history of a follow-mode task that test_replay.py replays.

    .venv/bin/python -m tests.workflows.make_follow_history

A real task with `follow` (local Temporal dev server, in-process worker, kubesim with
autoscaler joins): a first sweep, nodes joining during it and while following, continue-as-new
every 3 units (the sweep's batches, then the follow units), the end of its duration. Writes
follow-runN.json to tests/workflows/histories/ and prints the events per joined node. Re-run it
and commit the files whenever the follow phase's commands change.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from datetime import UTC, datetime

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from common.engine import EngineState, PrewarmInput
from common.models import FollowSpec, TaskSpec, TaskView
from common.settings import Settings
from common.starting import start_prewarm_workflow
from common.temporal import ALL_SEARCH_ATTRIBUTE_KEYS
from kubesim.testing import start_sim
from worker.main import build_worker


async def events_per_run(client: Client, handle: WorkflowHandle[object, TaskView]) -> list[int]:
    counts: list[int] = []
    run_id: str | None = handle.first_execution_run_id
    while run_id is not None:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        counts.append(len(history.events))
        attrs = history.events[-1].workflow_execution_continued_as_new_event_attributes
        run_id = attrs.new_execution_run_id or None
    return counts


async def main() -> None:
    from .make_history import _save

    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=shutil.which("temporal"),
        search_attributes=ALL_SEARCH_ATTRIBUTE_KEYS,
    )
    try:
        with start_sim(nodes=12, time_scale=20, seed=1) as sim:
            settings = Settings(
                kubeconfig=sim.kubeconfig_path,
                metrics_port=0,
                temporal_metrics_port=0,
                unschedulable_grace_seconds=2,
                engine_time_scale=20,
            )
            async with await build_worker(env.client, settings, task_queue="history"):
                stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
                spec = TaskSpec(
                    images=["registry.example.com/ips-test/small:1"],
                    batch_size=2,
                    node_selector={"pool": "compute"},
                    follow=FollowSpec(duration_seconds=25),
                )
                tid = f"task-{stamp}-0000f011"
                h = await start_prewarm_workflow(
                    env.client,
                    "history",
                    PrewarmInput(
                        task_id=tid,
                        spec=spec,
                        created_at=datetime.now(UTC),
                        state=EngineState(units_per_run=3),
                    ),
                )
                sim.join_nodes(1, "compute", ready_after=20, taints_removed_after=20)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.5)
                for _ in range(3):
                    sim.join_nodes(2, "compute", ready_after=20, taints_removed_after=20)
                    await asyncio.sleep(4)
                view = await h.result()
                print(tid, view.status, view.progress, view.following)
                counts = await events_per_run(env.client, h)
                added = view.following.nodes_added if view.following else 0
                print(f"events per run {counts}; {sum(counts)} events, {added} nodes joined")
                await _save(env.client, h, "follow")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
