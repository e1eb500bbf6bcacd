"""Regenerate the committed history of ScheduleLauncherWorkflow that test_replay.py replays.

    .venv/bin/python -m tests.workflows.make_launcher_history [NAME] [--out DIR]

A real Temporal Schedule (built as the API builds it) is triggered once on a local dev server
with an in-process worker and kubesim (tests/workflows/historylib.py); the launcher's history
(one child task started, waited for, completed) is written to tests/workflows/histories/<NAME>
(or DIR/<NAME>; default launcher-v2-run1.json: the child's task ID from the launcher's workflow
ID and run ID, issue 15). When the launcher's commands change (gated with workflow.patched()),
keep the older files and write a new one.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus

from api.schedules import build_schedule
from common import temporal as t
from common.engine import LauncherInput
from common.models import TaskSpec
from common.schedule_models import ScheduleWhen

from .historylib import OUT, history_rig, parse_args

SCHEDULE_ID = "sched-00000000a1b2"
NAME = "launcher-v2-run1.json"


async def main(name: str = NAME, out: Path = OUT) -> None:
    async with history_rig(nodes=4, time_scale=50, out=out) as rig:
        inp = LauncherInput(
            schedule_id=SCHEDULE_ID,
            owner="anonymous",
            spec=TaskSpec(images=["nginx:latest"], batch_size=2),
            when=ScheduleWhen(every="1h"),
        )
        schedule = build_schedule(SCHEDULE_ID, rig.task_queue, inp, paused=True, note=None)
        handle = await rig.client.create_schedule(SCHEDULE_ID, schedule)
        await handle.trigger()
        query = f"WorkflowType = '{t.LAUNCHER_WORKFLOW_NAME}'"
        while True:
            found = [wf async for wf in rig.client.list_workflows(query)]
            if found and found[0].status == WorkflowExecutionStatus.COMPLETED:
                break
            await asyncio.sleep(0.5)
        wf = rig.client.get_workflow_handle(found[0].id, run_id=found[0].run_id)
        rig.write(name, await wf.fetch_history())
        print(found[0].id, await wf.result())
        await handle.delete()


if __name__ == "__main__":
    args = parse_args(__doc__ or "", NAME=f"the file to write ({NAME})")
    sys.exit(asyncio.run(main(args.NAME or NAME, args.out)))
