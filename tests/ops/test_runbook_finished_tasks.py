"""The runbook's reading commands on finished tasks (listing, counting, result, history, failures
by reason, the export that replays) and the reset to a batch, each run as written."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from common.models import TaskSpec, TaskView
from workflows.prewarm import PrewarmWorkflow

from .conftest import Ops
from .runbook import RUNBOOK

GOOD = "busybox:latest"
NOT_FOUND = "registry.example.com/ips-test/not-found:1"
# The runbook blocks this module runs (its last test checks it).
BLOCKS = frozenset({"list-failed", "count-by-status", "count-running", "result",
                    "history", "history-activities", "query-progress-summary", "status",
                    "failed-by-reason", "pull-events", "history-failures", "export-history",
                    "reset-to-batch"})  # fmt: skip


@dataclass
class Finished:
    done: str
    failed_nodes: str
    failed: str
    bad_namespace: str
    views: dict[str, Any]


@pytest.fixture(scope="module")
async def finished(ops: Ops) -> Finished:
    e = ops.engine
    handles = {
        "done": await e.start(TaskSpec(images=[GOOD], batch_size=2)),
        "failed_nodes": await e.start(TaskSpec(images=[NOT_FOUND], batch_size=3)),
        "failed": await e.start(TaskSpec(images=[NOT_FOUND], batch_size=2, max_failure_ratio=0.0)),
        # Its own image: nodes warm with GOOD would need no Job, and nothing would fail.
        "bad_namespace": await ops.bad_engine.start(
            TaskSpec(images=["registry.example.com/team/namespace-check:1"], batch_size=2)
        ),
    }
    views = dict(
        zip(
            handles,
            await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles.values())), 90),
            strict=True,
        )
    )
    assert views["done"].status == "completed", views["done"]
    assert views["done"].progress.total_batches >= 2, "reset-to-batch needs two batches"
    assert views["failed"].status == "failed", views["failed"]
    return Finished(**{k: h.id for k, h in handles.items()}, views=views)


@pytest.mark.integration
async def test_listing_and_counting(ops: Ops, finished: Finished) -> None:
    out = (await ops.run.run("list-failed")).stdout
    assert finished.failed in out and finished.done not in out
    lines = (await ops.run.run("count-by-status")).stdout.splitlines()
    counts = {line.split()[0]: int(line.split()[-1]) for line in lines}
    expected = {s: 0 for s in ("pending", "running", "completed", "failed", "cancelled")}
    for task_id in (finished.done, finished.failed_nodes, finished.failed, finished.bad_namespace):
        status = await ops.engine.status(task_id)
        assert status is not None
        expected[status] += 1
    assert counts == expected
    assert (await ops.run.run("count-running")).stdout.strip() == "Total: 0"


@pytest.mark.integration
async def test_reading_a_finished_task(ops: Ops, finished: Finished) -> None:
    r = ops.run
    result = (await r.run("result", TASK_ID=finished.done)).stdout
    assert '"status":"completed"' in result.replace(" ", "")
    assert "WorkflowExecutionCompleted" in (await r.run("history", TASK_ID=finished.done)).stdout
    rows = [
        line.split("\t")
        for line in (await r.run("history-activities", TASK_ID=finished.done)).stdout.splitlines()
    ]
    names = [row[1] for row in rows]
    total = finished.views["done"].progress.total_batches
    assert names == ["list_nodes"] + ["prewarm_nodes"] * total
    assert f'"batch 2/{total}:' in rows[2][2]
    summary = json.loads((await r.run("query-progress-summary", TASK_ID=finished.done)).stdout)
    assert summary["status"] == "completed"
    assert summary["progress"] == finished.views["done"].progress.model_dump(by_alias=True)
    assert await r.run("status", TASK_ID=finished.failed) is not None
    status = (await r.run("status", TASK_ID=finished.failed)).stdout.strip()
    assert status == "failed"


@pytest.mark.integration
async def test_failed_nodes_by_reason(ops: Ops, finished: Finished) -> None:
    view = finished.views["failed_nodes"]
    groups = json.loads(
        (await ops.run.run("failed-by-reason", TASK_ID=finished.failed_nodes)).stdout
    )
    assert [g["reason"] for g in groups] == ["ImageNotFound"], groups
    assert groups[0]["nodes"] == view.progress.failed_nodes > 0
    assert groups[0]["image"] == NOT_FOUND
    events = (await ops.run.run("pull-events")).stdout
    assert NOT_FOUND in events


@pytest.mark.integration
async def test_activity_failure_in_history(ops: Ops, finished: Finished) -> None:
    failures = json.loads(
        (await ops.run.run("history-failures", TASK_ID=finished.bad_namespace)).stdout
    )
    assert failures and "namespace 'absent' (K8S_NAMESPACE) does not exist" in str(failures)
    ratio = finished.views["failed"].message
    assert re.search(r"more than maxFailureRatio \S+: stopped creating Jobs", ratio), ratio
    # The task's message is the one the runbook's task-level failure list names.
    message = finished.views["bad_namespace"].message
    expected = "prewarming a batch failed: namespace 'absent' (K8S_NAMESPACE)"
    assert message.startswith(expected), message
    assert "`prewarming a batch failed: namespace 'x' (K8S_NAMESPACE) does not exist`" in (
        RUNBOOK.read_text()
    )
    assert json.loads((await ops.run.run("history-failures", TASK_ID=finished.done)).stdout) == []


@pytest.mark.integration
async def test_exported_history_replays(ops: Ops, finished: Finished) -> None:
    await ops.run.run("export-history", TASK_ID=finished.done)
    path = ops.tmp / "tests/workflows/histories" / f"{finished.done}.json"
    history = WorkflowHistory.from_json(finished.done, path.read_text())
    replayer = Replayer(workflows=[PrewarmWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


@pytest.mark.integration
async def test_reset_to_a_batch(ops: Ops, finished: Finished) -> None:
    handle = ops.client.get_workflow_handle(finished.done)
    before = (await handle.describe()).run_id
    out = (await ops.run.run("reset-to-batch", TASK_ID=finished.done)).stdout
    event = re.search(r"to event (\d+) \(before batch 2\)", out)
    assert event is not None and int(event.group(1)) > 0, out
    new = ops.client.get_workflow_handle(finished.done, result_type=TaskView)
    desc = await new.describe()
    assert desc.run_id != before
    view = await asyncio.wait_for(new.result(), 60)
    assert view.status == "completed"
    assert view.progress.total_batches == finished.views["done"].progress.total_batches


@pytest.mark.integration
async def test_ran_exactly_its_blocks(ops: Ops) -> None:
    """Last in the module: it ran each of BLOCKS, and no other block."""
    assert ops.run.exercised == BLOCKS
