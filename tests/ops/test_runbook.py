"""Every command block of docs/operations.md, run as written against a real Temporal dev server,
the real engine (in-process worker) and kubesim; the output is what the runbook says it is.

Each test runs in a Temporal namespace of its own making, so the runbook's namespace-wide
commands (list, count, batch cancel) see only this module's tasks.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from api.schedules import build_schedule
from common.engine import LauncherInput
from common.models import TaskSpec, TaskView
from common.schedule_models import ScheduleWhen
from common.search_attributes import ensure_search_attributes
from common.settings import Settings
from common.temporal import SearchAttr, connect
from kubesim.testing import SimHandle, start_sim
from tests.deploy.engine_harness import Engine, run_engine
from workflows.prewarm import PrewarmWorkflow

from .runbook import RUNBOOK, Runner, blocks, inline_temporal_commands, runbook_blocks

GOOD = "busybox:latest"
NOT_FOUND = "registry.example.com/ips-test/not-found:1"
HUGE = "registry.example.com/ips-runbook/huge:1"  # pulls for minutes: keeps a batch running
TYPE_NAMES = {
    IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
    IndexedValueType.INDEXED_VALUE_TYPE_INT: "Int",
    IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE: "Double",
}


# --- the document itself ------------------------------------------------------------------


@pytest.mark.unit
def test_every_shell_block_is_tagged() -> None:
    from .runbook import TAG, fenced

    untagged = [info for info, _ in fenced(RUNBOOK.read_text()) if not TAG.match(info)]
    assert untagged == [], "tag each block `sh runbook:<id>` or `sh not-run:<reason>`"
    names = [b.name for b in blocks() if b.kind == "runbook"]
    assert len(names) == len(set(names)), "runbook ids must be unique"


@pytest.mark.unit
def test_blocks_that_are_not_run_have_no_temporal_command() -> None:
    for block in blocks():
        if block.kind == "not-run":
            assert not any(c.startswith("temporal ") for c in block.commands()), block.name


@pytest.mark.unit
def test_inline_temporal_commands_start_a_tested_command() -> None:
    """The tctl table and the prose show only commands that a runbook block runs."""
    tested = [c for b in runbook_blocks().values() for c in b.commands()]
    inline = inline_temporal_commands()
    assert len(inline) >= 12
    for span in inline:
        assert any(c.startswith(span) for c in tested), f"`{span}` is not run by any block"


@pytest.mark.unit
def test_registration_block_matches_common() -> None:
    """The runbook registers exactly common.temporal.SearchAttr, with the right types."""
    registered: dict[str, str] = {}
    for cmd in runbook_blocks()["register-search-attributes"].commands():
        kind = re.search(r"--type (\w+)", cmd)
        assert kind is not None, cmd
        for name in re.findall(r"--name (\w+)", cmd):
            registered[name] = kind.group(1)
    assert registered == {a.value: TYPE_NAMES[a.indexed_type] for a in SearchAttr}


# --- the environment ----------------------------------------------------------------------


@dataclass
class Ops:
    client: Client
    engine: Engine
    bad_engine: Engine
    run: Runner
    sim: SimHandle
    namespace: str
    tmp: Path


async def _namespace(address: str, dev_client: Client) -> tuple[str, Client]:
    """A fresh Temporal namespace with our search attributes, ready to take workflows."""
    name = f"runbook-{uuid.uuid4().hex[:8]}"
    await dev_client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    client = await connect(Settings(temporal_address=address, temporal_namespace=name))
    for _ in range(100):  # the frontend's namespace cache catches up within seconds
        try:
            await ensure_search_attributes(client, name)
            await client.count_workflows()
            return name, client
        except Exception:
            await asyncio.sleep(0.2)
    raise AssertionError(f"namespace {name} never became usable")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    scenario = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "kubesim/scenarios/default.yaml").read_text()
    )
    scenario["images"].append({"name": HUGE, "size": "4000GiB"})
    with start_sim(nodes=8, scenario=scenario, time_scale=20) as handle:
        yield handle


@pytest.fixture(scope="module")
async def ops(
    dev_client: Client, dev_address: str, sim: SimHandle, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Ops]:
    namespace, client = await _namespace(dev_address, dev_client)
    tmp = tmp_path_factory.mktemp("runbook")
    run = Runner(
        {
            "TEMPORAL_ADDRESS": dev_address,
            "TEMPORAL_NAMESPACE": namespace,
            "K8S_NAMESPACE": "default",
            "KUBECONFIG": str(sim.kubeconfig_path),
        },
        tmp,
    )
    async with (
        run_engine(client, sim, job_ttl_seconds=3600) as engine,
        run_engine(client, sim, k8s_namespace="absent") as bad_engine,
    ):
        yield Ops(client, engine, bad_engine, run, sim, namespace, tmp)


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


# --- finished tasks -----------------------------------------------------------------------


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
async def test_health(ops: Ops) -> None:
    assert "SERVING" in (await ops.run.run("health")).stdout


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


# --- a running task -----------------------------------------------------------------------


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


# --- a new cluster ------------------------------------------------------------------------


@pytest.mark.integration
async def test_register_search_attributes_on_a_new_namespace(ops: Ops) -> None:
    r = ops.run
    fresh = f"runbook-new-{uuid.uuid4().hex[:8]}"
    await r.run("create-namespace", IPS_NAMESPACE=fresh)
    for _ in range(100):
        listed = await r.run("list-search-attributes", check=False, TEMPORAL_NAMESPACE=fresh)
        if listed.returncode == 0:
            break
        await asyncio.sleep(0.2)
    assert not any(a.value in listed.stdout for a in SearchAttr)
    await r.run("register-search-attributes", TEMPORAL_NAMESPACE=fresh)
    await r.run("register-search-attributes", TEMPORAL_NAMESPACE=fresh)  # harmless again
    rows: dict[str, str] = {}
    for _ in range(50):  # the frontend's search-attribute cache catches up within seconds
        listed = await r.run("list-search-attributes", TEMPORAL_NAMESPACE=fresh)
        rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:]}
        if all(a.value in rows for a in SearchAttr):
            break
        await asyncio.sleep(0.2)
    assert {a.value: rows.get(a.value) for a in SearchAttr} == {
        a.value: TYPE_NAMES[a.indexed_type] for a in SearchAttr
    }


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
async def test_web_ui_queries_are_valid(ops: Ops) -> None:
    """The list filters the runbook gives for the Web UI are accepted by the server."""
    text = RUNBOOK.read_text()
    section = text[
        text.index("## Finding a task in the Web UI") : text.index("## The temporal CLI")
    ]
    queries = re.findall(r"`(Ips[^`]+)`", section)
    assert len(queries) >= 2, queries
    for query in queries:
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "temporal"),
            "workflow",
            "count",
            "--query",
            query,
            env=ops.run.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, f"{query}: {err.decode()}"
        assert out.decode().startswith("Total: "), out


@pytest.mark.integration
async def test_every_runbook_block_was_run(ops: Ops) -> None:
    """Last in the module: each `runbook:` block of docs/operations.md ran above."""
    assert ops.run.exercised == set(runbook_blocks()), set(runbook_blocks()) - ops.run.exercised
