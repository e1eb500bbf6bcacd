"""The runbook's `temporal schedule` commands on a schedule as the API creates it."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest

from api.schedules import build_schedule
from common.engine import LauncherInput
from common.models import TaskSpec
from common.schedule_models import ScheduleWhen

from .conftest import HUGE, Ops

# The runbook blocks this module runs (its last test checks it).
BLOCKS = frozenset({"schedule-list", "schedule-describe", "schedule-pause", "schedule-unpause",
                    "schedule-trigger", "schedule-runs", "schedule-delete"})  # fmt: skip


@pytest.mark.integration
async def test_schedule_commands(ops: Ops) -> None:
    """A schedule as the API creates it, operated with `temporal schedule`: list, describe,
    pause, unpause, trigger, its runs, and delete with its running run cancelled."""
    sid = f"sched-{uuid.uuid4().hex[:12]}"
    queue = ops.engine.settings.temporal_task_queue
    inp = LauncherInput(
        schedule_id=sid,
        owner="anonymous",
        spec=TaskSpec(images=[HUGE], batch_size=2, timeout_seconds=3600),
        when=ScheduleWhen(every="6h"),
    )
    await ops.client.create_schedule(sid, build_schedule(sid, queue, inp, paused=False, note=None))
    r = ops.run
    for _ in range(100):  # schedule visibility lags a little
        if sid in (await r.run("schedule-list")).stdout:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"{sid} never listed")
    assert "ScheduleLauncherWorkflow" in (await r.run("schedule-describe", SCHEDULE_ID=sid)).stdout

    handle = ops.client.get_schedule_handle(sid)
    await r.run("schedule-pause", SCHEDULE_ID=sid)
    assert (await handle.describe()).schedule.state.paused is True
    await r.run("schedule-unpause", SCHEDULE_ID=sid)
    assert (await handle.describe()).schedule.state.paused is False

    await r.run("schedule-trigger", SCHEDULE_ID=sid)
    task_id = None
    for _ in range(150):
        found = re.search(
            r"task-\d{8}-\d{6}-[0-9a-f]{8}", (await r.run("schedule-runs", SCHEDULE_ID=sid)).stdout
        )
        if found:
            task_id = found.group(0)
            break
        await asyncio.sleep(0.2)
    assert task_id is not None, "the triggered run never listed"
    await ops.engine.wait_status(task_id, "running")

    await r.run("schedule-delete", SCHEDULE_ID=sid)
    assert await ops.engine.wait_status(task_id, "cancelled") == "cancelled"
    query = f"IpsScheduleId = '{sid}' AND ExecutionStatus = 'Running'"
    for _ in range(100):
        if (await ops.client.count_workflows(query)).count == 0:
            break
        await asyncio.sleep(0.2)
    assert (await ops.client.count_workflows(query)).count == 0
    assert sid not in [s.id async for s in await ops.client.list_schedules()]


@pytest.mark.integration
async def test_ran_exactly_its_blocks(ops: Ops) -> None:
    """Last in the module: it ran each of BLOCKS, and no other block."""
    assert ops.run.exercised == BLOCKS
