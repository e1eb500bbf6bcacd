"""The runbook's commands on a running task (list, describe, its pending activity, its Jobs) and
the ways to stop one: cancel, cancel every running task, terminate (and delete what it leaves)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus

from common.models import TaskSpec, TaskView

from .conftest import HUGE, Ops

# The runbook blocks this module runs (its last test checks it).
BLOCKS = frozenset({"list-running", "list-running-open", "describe", "count-running",
                    "count-started-before", "status", "pending-activity", "query-progress",
                    "all-ips-jobs", "leftover-jobs", "cancel", "cancel-all-running", "terminate",
                    "query-progress-summary", "delete-leftover-jobs"})  # fmt: skip


async def _held(ops: Ops) -> str:
    """A task whose first batch is pulling a huge image: running, with a pending activity."""
    handle = await ops.engine.start(TaskSpec(images=[HUGE], batch_size=2, timeout_seconds=3600))
    task_id = handle.id
    await ops.engine.wait_status(task_id, "running")
    for _ in range(150):
        desc = await handle.describe()
        pending = desc.raw_description.pending_activities
        if any(p.activity_type.name == "prewarm_nodes" for p in pending):
            jobs = ops.sim.objects("jobs", "default", f"prewarm.ips.io/task={task_id}")
            if jobs:
                return task_id
        await asyncio.sleep(0.2)
    raise AssertionError(f"{task_id}: no running batch with Jobs")


@pytest.mark.integration
async def test_a_running_task_then_cancel(ops: Ops) -> None:
    r = ops.run
    task_id = await _held(ops)
    for name in ("list-running", "list-running-open", "describe"):
        assert task_id in (await r.run(name, TASK_ID=task_id)).stdout, name
    assert (await r.run("count-running")).stdout.strip() == "Total: 1"
    deploy_time = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = (await r.run("count-started-before", DEPLOY_TIME=deploy_time)).stdout
    assert out.strip() == "Total: 1"
    assert (await r.run("status", TASK_ID=task_id)).stdout.strip() == "running"
    for _ in range(50):  # the first heartbeat comes within about a second
        pending = json.loads((await r.run("pending-activity", TASK_ID=task_id)).stdout)
        if pending.get("lastHeartbeatTime"):
            break
        await asyncio.sleep(0.2)
    assert pending["activity"] == "prewarm_nodes", pending
    assert pending["attempt"] == 1 and pending["lastFailure"] is None, pending
    # The batch heartbeats while it waits; no node has an outcome yet, so no indexes.
    assert pending["lastHeartbeatTime"] and pending["heartbeatDetails"] == [None], pending
    assert pending["state"] in (
        "PENDING_ACTIVITY_STATE_STARTED",
        "PENDING_ACTIVITY_STATE_SCHEDULED",
    )
    progress = (await r.run("query-progress", TASK_ID=task_id)).stdout
    assert task_id in progress and '"status":"running"' in progress.replace(" ", "")
    jobs = (await r.run("all-ips-jobs")).stdout
    assert re.search(r"^ips-[0-9a-f]{10}-[0-9a-f]{16}\s", jobs, re.M), jobs
    assert (await r.run("leftover-jobs", TASK_ID=task_id)).stdout.strip()

    await r.run("cancel", TASK_ID=task_id)
    await ops.engine.wait_status(task_id, "cancelled")
    view = await ops.client.get_workflow_handle(task_id, result_type=TaskView).result()
    assert view.status == "cancelled"
    # Cancel cleans up: no Job of the task is left.
    assert (await r.run("leftover-jobs", TASK_ID=task_id)).stdout.strip() == ""


@pytest.mark.integration
async def test_cancel_every_running_task(ops: Ops) -> None:
    tasks = [await _held(ops), await _held(ops)]
    out = await ops.run.run("cancel-all-running")
    assert out.returncode == 0
    for task_id in tasks:
        await ops.engine.wait_status(task_id, "cancelled")
    assert (await ops.run.run("count-running")).stdout.strip() == "Total: 0"


@pytest.mark.integration
async def test_terminate_leaves_jobs_to_delete(ops: Ops) -> None:
    r = ops.run
    task_id = await _held(ops)
    await r.run("terminate", TASK_ID=task_id)
    desc = await ops.client.get_workflow_handle(task_id).describe()
    assert desc.status == WorkflowExecutionStatus.TERMINATED
    # As the runbook warns: IpsStatus stays `running`, and the Jobs stay.
    assert (await r.run("status", TASK_ID=task_id)).stdout.strip() == "running"
    assert task_id in (await r.run("list-running")).stdout
    assert task_id not in (await r.run("list-running-open")).stdout
    # No result, but the progress query still answers (a worker replays the history).
    frozen = json.loads((await r.run("query-progress-summary", TASK_ID=task_id)).stdout)
    assert frozen["status"] == "running" and frozen["progress"]["currentBatch"] == 1, frozen
    left = (await r.run("leftover-jobs", TASK_ID=task_id)).stdout
    assert len(left.strip().splitlines()) >= 2, left  # header + at least one Job
    await r.run("delete-leftover-jobs", TASK_ID=task_id)
    for _ in range(50):
        if not ops.sim.objects("jobs", "default", f"prewarm.ips.io/task={task_id}"):
            break
        await asyncio.sleep(0.1)
    assert (await r.run("leftover-jobs", TASK_ID=task_id)).stdout.strip() == ""


@pytest.mark.integration
async def test_ran_exactly_its_blocks(ops: Ops) -> None:
    """Last in the module: it ran each of BLOCKS, and no other block."""
    assert ops.run.exercised == BLOCKS
