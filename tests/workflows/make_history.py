"""Regenerate the committed histories that test_replay.py replays.

    .venv/bin/python -m tests.workflows.make_history [TAG]

TAG (say `v2`) names the files batch-can-TAG-runN.json and rolling-cancel-TAG-run1.json, so a
new generation is committed next to the old ones, which must keep replaying.

Runs real tasks (local Temporal dev server, in-process worker, kubesim) and writes one JSON
file per workflow run to tests/workflows/histories/. Re-run it, and commit the new files next to
the old ones, whenever PrewarmWorkflow changes in a way that alters its commands (and gate the
change with workflow.patched() so the old histories still replay).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from common.engine import EngineState, PrewarmInput
from common.models import TaskSpec, TaskView
from common.settings import Settings
from common.starting import start_prewarm_workflow
from common.temporal import ALL_SEARCH_ATTRIBUTE_KEYS
from kubesim.testing import start_sim
from worker.main import build_worker

OUT = Path(__file__).parent / "histories"
KEYS = ALL_SEARCH_ATTRIBUTE_KEYS


async def _save(client: Client, handle: WorkflowHandle[object, TaskView], name: str) -> None:
    run_id: str | None = handle.first_execution_run_id
    k = 1
    while run_id is not None:
        h = client.get_workflow_handle(handle.id, run_id=run_id)
        history = await h.fetch_history()
        (OUT / f"{name}-run{k}.json").write_text(history.to_json())
        last = history.events[-1]
        attrs = last.workflow_execution_continued_as_new_event_attributes
        run_id = attrs.new_execution_run_id or None
        k += 1


async def main(tag: str = "") -> None:
    suffix = f"-{tag}" if tag else ""
    OUT.mkdir(exist_ok=True)
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=shutil.which("temporal"),
        search_attributes=KEYS,
    )
    try:
        with start_sim(nodes=14, time_scale=50, seed=1) as sim:
            settings = Settings(
                kubeconfig=sim.kubeconfig_path,
                metrics_port=0,
                temporal_metrics_port=0,
                unschedulable_grace_seconds=2,
            )
            async with await build_worker(env.client, settings, task_queue="history"):
                stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
                # 1. Batches with continue-as-new every 2 batches, skipped/warm/failed nodes.
                spec = TaskSpec(
                    images=["nginx:latest", "registry.example.com/ips-test/not-found:1"],
                    batch_size=3,
                    node_selector={"pool": "compute"},
                )
                tid = f"task-{stamp}-0000aaaa"
                h = await start_prewarm_workflow(
                    env.client,
                    "history",
                    PrewarmInput(
                        task_id=tid,
                        spec=spec,
                        created_at=datetime.now(UTC),
                        state=EngineState(units_per_run=2),
                    ),
                )
                print(tid, (await h.result()).progress)
                await _save(env.client, h, f"batch-can{suffix}")
                # 2. Rolling, cancelled mid-window.
                spec = TaskSpec(
                    images=["registry.example.com/ips-test/large:1"],
                    batch_size=2,
                    strategy="rolling",
                )
                tid = f"task-{stamp}-0000bbbb"
                h = await start_prewarm_workflow(
                    env.client,
                    "history",
                    PrewarmInput(task_id=tid, spec=spec, created_at=datetime.now(UTC)),
                )
                deadline = time.monotonic() + 30
                while not sim.objects("jobs") and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1)
                await h.cancel()
                print(tid, (await h.result()).status)
                await _save(env.client, h, f"rolling-cancel{suffix}")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:2])))
