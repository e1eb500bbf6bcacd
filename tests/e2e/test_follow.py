"""Follow mode end to end: Temporal dev server, a real worker, kubesim with autoscaler joins.

Nodes join like an autoscaler's (kubesim/autoscaler.py: NotReady with startup taints, Ready
later, untainted later), during the first sweep and while following; nodes skipped at the
start (NotReady, cordoned) are fixed while following. Each test counts the pulls per joined
node (exactly one), `totalNodes`, and the phase; one kills the worker while following and
compacts the watch history, so the restarted worker must resume and relist.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.jobspec import task_selector
from common.engine import ACTIVITY_FOLLOW_NODES, PrewarmInput
from common.models import FollowSpec, TaskPhase, TaskSpec, TaskStatus, TaskView
from common.settings import Settings
from common.starting import start_prewarm_workflow
from common.temporal import QUERY_PROGRESS
from kubesim.testing import SimHandle, start_sim
from tests.e2e.test_engine import _worker_process
from tests.waiting import async_wait_until
from tests.workflows.conftest import task_id
from worker.main import build_worker

pytestmark = pytest.mark.integration

IMAGE = "registry.example.com/ips-test/follow:1"
TIME_SCALE = 10.0
SCENARIO: dict[str, Any] = {
    "defaults": {"pullOverheadSeconds": 0.2, "containerRunSeconds": 0.5},
    "nodeGroups": [
        {"name": "compute", "count": 6, "labels": {"pool": "compute"}, "notReady": 1,
         "cordoned": 1},
        {"name": "other", "count": 2, "labels": {"pool": "other"}},
    ],
    "images": [{"name": IMAGE, "size": "20MiB", "pullSeconds": {"median": 15, "sigma": 0.1}}],
    "namespaces": ["default", "kube-system"],
}  # fmt: skip
SELECTOR = {"pool": "compute"}
# Joins as an autoscaler's, in simulated seconds (1 real second = TIME_SCALE simulated).
JOIN = {"ready_after": 10.0, "taints_removed_after": 10.0}


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    with start_sim(nodes=None, scenario=SCENARIO, time_scale=TIME_SCALE, seed=5) as handle:
        yield handle


def settings_for(sim: SimHandle) -> Settings:
    return Settings(
        kubeconfig=sim.kubeconfig_path,
        k8s_qps=500.0,
        k8s_burst=500,
        unschedulable_grace_seconds=5,
        metrics_port=0,
        temporal_metrics_port=0,
        engine_time_scale=TIME_SCALE,
        job_ttl_seconds=86400,  # every Job stays, to be counted
    )


@asynccontextmanager
async def engine(env: WorkflowEnvironment, sim: SimHandle) -> AsyncIterator[str]:
    queue = f"follow-it-{uuid.uuid4().hex[:8]}"
    async with await build_worker(env.client, settings_for(sim), task_queue=queue):
        yield queue


async def submit(client: Client, queue: str, spec: TaskSpec) -> WorkflowHandle[Any, TaskView]:
    return await start_prewarm_workflow(
        client, queue, PrewarmInput(task_id=task_id(), spec=spec, created_at=datetime.now(UTC))
    )


def spec(follow: FollowSpec) -> TaskSpec:
    return TaskSpec(images=[IMAGE], batch_size=2, node_selector=SELECTOR, follow=follow)


async def progress(handle: WorkflowHandle[Any, TaskView]) -> TaskView:
    return await handle.query(QUERY_PROGRESS, result_type=TaskView)


async def until_view(
    handle: WorkflowHandle[Any, TaskView], pred: Callable[[TaskView], bool], within: float = 90
) -> TaskView:
    last: list[TaskView] = []

    async def check() -> TaskView | None:
        view = await progress(handle)
        last[:] = [view]
        return view if pred(view) else None

    result: TaskView = await async_wait_until(
        check,
        within,
        interval=0.3,
        message=lambda: f"the task never reached the expected state: {last[0] if last else None}",
    )
    return result


async def follow_cost(handle: WorkflowHandle[Any, TaskView]) -> dict[str, int]:
    """History of the follow phase: events from the first follow unit to the cancel request
    (or the end), the most events in one run, and the bytes of the units' inputs."""
    events = [e async for e in handle.fetch_history_events()]
    scheduled = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ends = {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    }
    first = next(
        i
        for i, e in enumerate(events)
        if e.event_type == scheduled
        and e.activity_task_scheduled_event_attributes.activity_type.name == ACTIVITY_FOLLOW_NODES
    )
    last = next(i for i, e in enumerate(events) if e.event_type in ends)
    units = [
        e.activity_task_scheduled_event_attributes
        for e in events
        if e.event_type == scheduled
        and e.activity_task_scheduled_event_attributes.activity_type.name == ACTIVITY_FOLLOW_NODES
    ]
    return {
        "follow_events": last - first,
        "run_events": len(events),
        "units": len(units),
        "unit_input_bytes": max(a.input.ByteSize() for a in units),
    }


def pulls(sim: SimHandle, nodes: list[str]) -> dict[str, int]:
    counts = sim.pull_counts()
    return {n: counts.get((n, IMAGE), 0) for n in nodes}


def names(sim: SimHandle, pred: Callable[[dict[str, Any]], bool]) -> list[str]:
    return sorted(n["metadata"]["name"] for n in sim.objects("nodes") if pred(n))


def _ready(n: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", [])
    )


def _compute(n: dict[str, Any]) -> bool:
    return bool(n["metadata"]["labels"].get("pool") == "compute")


def skipped_at_start(sim: SimHandle) -> tuple[str, str]:
    not_ready = names(sim, lambda n: _compute(n) and not _ready(n))
    cordoned = names(sim, lambda n: _compute(n) and bool(n["spec"].get("unschedulable")))
    assert len(not_ready) == 1 and len(cordoned) == 1
    return not_ready[0], cordoned[0]


async def test_follow_prewarms_nodes_joining_during_and_after_the_sweep_until_deleted(
    dev_env: WorkflowEnvironment, sim: SimHandle
) -> None:
    not_ready, cordoned = skipped_at_start(sim)
    eligible = names(sim, _compute)
    eligible = [n for n in eligible if n not in (not_ready, cordoned)]
    assert len(eligible) == 4
    async with engine(dev_env, sim) as queue:
        handle = await submit(dev_env.client, queue, spec(FollowSpec()))
        selector = task_selector(handle.id)
        # During the sweep: the first batch's Jobs exist, the second batch has not started.
        await async_wait_until(lambda: sim.objects("jobs", label_selector=selector), 60)
        during = sim.join_nodes(2, "compute", **JOIN)
        first = await until_view(handle, lambda v: v.phase == TaskPhase.FOLLOWING)
        assert first.status == TaskStatus.RUNNING
        assert first.following is not None
        # After the sweep: two more join; the two nodes skipped at the start are fixed.
        after = sim.join_nodes(2, "compute", **JOIN)
        sim.set_node_ready(not_ready, True)
        sim.set_node_cordoned(cordoned, False)
        sim.join_nodes(1, "other", **JOIN)  # another pool: never prewarmed
        joined = [*during, *after, not_ready, cordoned]
        view = await until_view(
            handle,
            lambda v: (
                v.following is not None
                and v.following.nodes_added == 6
                and v.progress.completed_nodes == 10
            ),
            within=120,
        )
        assert view.status == TaskStatus.RUNNING and view.phase == TaskPhase.FOLLOWING
        assert view.progress.total_nodes == 10
        assert view.progress.percentage == 100.0
        assert pulls(sim, eligible + joined) == {n: 1 for n in eligible + joined}
        others = names(sim, lambda n: not _compute(n))
        assert set(pulls(sim, others).values()) == {0}
        jobs = sim.objects("jobs", label_selector=selector)
        job_nodes = sorted(j["metadata"]["annotations"]["prewarm.ips.io/node"] for j in jobs)
        assert job_nodes == sorted(eligible + joined)  # one Job per node, none twice
        await handle.cancel()
        final = await handle.result()
        cost = await follow_cost(handle)
        report = f"follow history: {cost}, {cost['follow_events'] / 6:.1f} events per joined node"
        if sys.__stderr__ is not None:
            sys.__stderr__.write(report + "\n")
        # One unit (a few events) and its live signals (the joined nodes, then their
        # outcomes, at most one a second): a few events per joined node.
        assert cost["follow_events"] <= 8 * 6, cost
        await async_wait_until(
            lambda: (
                not sim.objects("jobs", label_selector=selector)
                and not sim.objects("pods", label_selector=selector)
            ),
            30,
        )
    assert final.status == TaskStatus.CANCELLED
    assert final.phase is None
    assert final.following is not None and final.following.nodes_added == 6


async def test_follow_ends_completed_when_its_duration_passes(
    dev_env: WorkflowEnvironment, sim: SimHandle
) -> None:
    async with engine(dev_env, sim) as queue:
        handle = await submit(dev_env.client, queue, spec(FollowSpec(duration_seconds=15)))
        await until_view(handle, lambda v: v.phase == TaskPhase.FOLLOWING)
        joined = sim.join_nodes(1, "compute", **JOIN)
        final = await asyncio.wait_for(handle.result(), 90)
    assert final.status == TaskStatus.COMPLETED
    assert final.following is not None and final.following.nodes_added == 1
    assert final.progress.total_nodes == 5
    assert final.progress.completed_nodes == 5
    assert pulls(sim, joined) == {joined[0]: 1}
    assert final.finished_at is not None
    assert (final.finished_at - final.following.since).total_seconds() >= 15


async def test_a_worker_killed_while_following_loses_no_joined_node(
    dev_env: WorkflowEnvironment, dev_address: str, sim: SimHandle, tmp_path: Path
) -> None:
    queue = f"follow-kill-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    proc = _worker_process(sim, dev_address, queue, log)
    try:
        handle = await submit(dev_env.client, queue, spec(FollowSpec()))
        await until_view(handle, lambda v: v.phase == TaskPhase.FOLLOWING)
        # A node joins and its Job is created: the kill lands mid-unit, with a Job in flight.
        first = sim.join_nodes(1, "compute", **JOIN)
        await async_wait_until(
            lambda: any(
                j["metadata"]["annotations"]["prewarm.ips.io/node"] == first[0]
                for j in sim.objects("jobs", label_selector=task_selector(handle.id))
            ),
            60,
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # With no worker: nodes join, and the watch history is compacted (410 on resume).
        joined = first + sim.join_nodes(3, "compute", **JOIN)
        await async_wait_until(
            lambda: all(_ready(n) and not n["spec"].get("taints") for n in sim.objects("nodes")
                        if n["metadata"]["name"] in joined),
            60,
        )  # fmt: skip
        sim.expire_watches()
        proc = _worker_process(sim, dev_address, queue, log)
        view = await until_view(
            handle,
            lambda v: (
                v.following is not None
                and v.following.nodes_added == 4
                and v.progress.completed_nodes == 8
            ),
            within=150,
        )
        assert view.progress.total_nodes == 8
        assert pulls(sim, joined) == {n: 1 for n in joined}
        await handle.cancel()
        final = await asyncio.wait_for(handle.result(), 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert final.status == TaskStatus.CANCELLED, log.read_text()[-3000:]
    # The restarted worker resumed the unit (adopting the Job in flight) and, the history
    # being compacted, relisted.
    assert "(410 Gone): relisting" in log.read_text()


async def test_a_spread_out_join_costs_at_most_two_kubernetes_requests(
    dev_env: WorkflowEnvironment, sim: SimHandle
) -> None:
    """Issue 15's target, as a count: 20 nodes joining one by one (each joins once the one
    before was taken) cost at most 2 Kubernetes requests each, everything included (the
    unit's Job creates, its pod, Event and node watches and their renewals)."""
    async with engine(dev_env, sim) as queue:
        handle = await submit(dev_env.client, queue, spec(FollowSpec()))
        await until_view(
            handle, lambda v: v.phase == TaskPhase.FOLLOWING and v.progress.completed_nodes == 4
        )
        before = sim.stats()
        joined: list[str] = []
        for _ in range(20):
            joined += sim.join_nodes(1, "compute", **JOIN)
            await until_view(handle, lambda v, c=len(joined): v.progress.total_nodes >= 4 + c)
        await until_view(handle, lambda v: v.progress.completed_nodes == 24, within=120)
        after = sim.stats()
        await handle.cancel()
        final = await asyncio.wait_for(handle.result(), 60)
    assert final.status == TaskStatus.CANCELLED
    assert pulls(sim, joined) == {n: 1 for n in joined}
    spent = after["requestsTotal"] - before["requestsTotal"]
    by_kind = {
        f"{verb} {resource}": sum(codes.values())
        - sum(before["requests"].get(verb, {}).get(resource, {}).values())
        for verb, resources in after["requests"].items()
        for resource, codes in resources.items()
    }
    report = f"follow: {spent} requests for 20 joins ({spent / 20:.2f} a node): {by_kind}"
    if sys.__stderr__ is not None:
        sys.__stderr__.write(report + "\n")
    assert spent <= 2 * 20, report
