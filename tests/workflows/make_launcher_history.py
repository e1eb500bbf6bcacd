"""Regenerate the committed history of ScheduleLauncherWorkflow that test_replay.py replays.

    .venv/bin/python -m tests.workflows.make_launcher_history

A real Temporal Schedule (built as the API builds it) is triggered once on a local dev server
with an in-process worker and kubesim; the launcher's history (one child task started, waited
for, completed) is written to tests/workflows/histories/<NAME> (default launcher-v2-run1.json:
the child's task ID from the launcher's workflow ID and run ID, issue 15). When the launcher's
commands change (gated with workflow.patched()), keep the older files and write a new one.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.schedules import build_schedule
from common import temporal as t
from common.engine import LauncherInput
from common.models import TaskSpec
from common.schedule_models import ScheduleWhen
from common.settings import Settings
from kubesim.testing import start_sim
from worker.main import build_worker

from .make_history import OUT

SCHEDULE_ID = "sched-00000000a1b2"
NAME = "launcher-v2-run1.json"


def _temporal() -> str:
    """The venv's `temporal` (never let the SDK download a server)."""
    path = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which(
        "temporal"
    )
    if path is None:
        raise SystemExit("`temporal` is not installed (make install)")
    return path


async def main(name: str = NAME) -> None:
    OUT.mkdir(exist_ok=True)
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=_temporal(),
        search_attributes=t.ALL_SEARCH_ATTRIBUTE_KEYS,
    )
    try:
        with start_sim(nodes=4, time_scale=50, seed=1) as sim:
            settings = Settings(
                kubeconfig=sim.kubeconfig_path, metrics_port=0, temporal_metrics_port=0
            )
            async with await build_worker(env.client, settings, task_queue="history"):
                inp = LauncherInput(
                    schedule_id=SCHEDULE_ID,
                    owner="anonymous",
                    spec=TaskSpec(images=["nginx:latest"], batch_size=2),
                    when=ScheduleWhen(every="1h"),
                )
                schedule = build_schedule(SCHEDULE_ID, "history", inp, paused=True, note=None)
                handle = await env.client.create_schedule(SCHEDULE_ID, schedule)
                await handle.trigger()
                query = f"WorkflowType = '{t.LAUNCHER_WORKFLOW_NAME}'"
                while True:
                    found = [wf async for wf in env.client.list_workflows(query)]
                    if found and found[0].status == WorkflowExecutionStatus.COMPLETED:
                        break
                    await asyncio.sleep(0.5)
                wf = env.client.get_workflow_handle(found[0].id, run_id=found[0].run_id)
                history = await wf.fetch_history()
                (OUT / name).write_text(history.to_json())
                print(found[0].id, await wf.result())
                await handle.delete()
    finally:
        await env.shutdown()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:2])))
