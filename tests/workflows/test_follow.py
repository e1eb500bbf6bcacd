"""Follow mode in PrewarmWorkflow (workflows/follow.py), with the activities mocked by name.

The follow unit is scripted: each call pops the next script entry (the nodes it takes, gone
nodes, resourceVersion), signals the nodes as joined and then their outcomes, as the real unit
does, and returns; with nothing scripted it waits a little and returns an empty unit at the
same resourceVersion. The tests assert what each unit was given (resourceVersion, covered
nodes, unit number), the counters growing live, the phase, continue-as-new carrying the follow
state, cancel and the end of the duration.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from common.engine import (
    ACTIVITY_FOLLOW_NODES,
    SIGNAL_NODE_OUTCOMES,
    EngineState,
    FollowNodesInput,
    FollowNodesResult,
    NodeOutcome,
    NodeOutcomes,
    NodeSelection,
    PrewarmInput,
)
from common.models import FollowSpec, Pacing, TaskPhase, TaskSpec, TaskStatus, TaskView
from common.settings import Settings
from tests.waiting import async_wait_until
from tests.workflows.conftest import MockEngine, node_names, selection, start
from worker.main import build_worker
from workflows.follow import UNIT_NODES

pytestmark = pytest.mark.integration


@dataclass
class Take:
    """One scripted unit: the nodes it takes, the covered nodes it saw deleted, its rv."""

    nodes: list[str] = field(default_factory=list)
    resource_version: str = ""
    gone: list[str] = field(default_factory=list)
    hold: asyncio.Event | None = None  # joined signalled, outcomes held until set


@dataclass
class Rounds:
    """The scripted follow_nodes activity."""

    script: list[Take] = field(default_factory=list)
    inputs: list[FollowNodesInput] = field(default_factory=list)
    quiet_seconds: float = 0.3
    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: int = 0

    def activity(self) -> Any:
        @activity.defn(name=ACTIVITY_FOLLOW_NODES)
        async def follow_nodes(inp: FollowNodesInput) -> FollowNodesResult:
            self.inputs.append(inp)
            self.started.set()
            if self.script:
                take = self.script.pop(0)
                handle = activity.client().get_workflow_handle(inp.task_id)
                await handle.signal(
                    SIGNAL_NODE_OUTCOMES,
                    NodeOutcomes(unit=inp.unit, outcomes=[], joined=take.nodes),
                )
                if take.hold is not None:
                    await take.hold.wait()
                outcomes = [NodeOutcome(node_name=n, ok=True) for n in take.nodes]
                await handle.signal(
                    SIGNAL_NODE_OUTCOMES, NodeOutcomes(unit=inp.unit, outcomes=outcomes[:1])
                )
                return FollowNodesResult(
                    unit=inp.unit,
                    joined=take.nodes,
                    outcomes=outcomes[1:],  # the rest travel in the result
                    resource_version=take.resource_version,
                    gone=take.gone,
                )
            try:
                end = asyncio.get_running_loop().time() + self.quiet_seconds
                while asyncio.get_running_loop().time() < end:
                    activity.heartbeat()  # as the real unit does: a cancel reaches it
                    await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            return FollowNodesResult(unit=inp.unit, resource_version=inp.resource_version)

        return follow_nodes


@pytest.fixture
async def env(skip_env: WorkflowEnvironment) -> WorkflowEnvironment:
    return skip_env


async def with_worker(
    env: WorkflowEnvironment,
    mock: MockEngine,
    rounds: Rounds,
    body: Callable[[str], Awaitable[Any]],
) -> Any:
    queue = f"follow-{uuid.uuid4().hex[:8]}"
    worker = await build_worker(
        env.client,
        Settings(),
        task_queue=queue,
        activities=[*mock.activities(), rounds.activity()],
    )
    async with worker:
        return await body(queue)


def spec(follow: FollowSpec | None, **kw: Any) -> TaskSpec:
    return TaskSpec(images=["nginx:latest"], batch_size=2, follow=follow, **kw)


def listed(n: int, rv: str = "10") -> NodeSelection:
    sel = selection(n)
    sel.resource_version = rv
    return sel


async def view_of(handle: WorkflowHandle[Any, TaskView]) -> TaskView:
    return await handle.query("progress", result_type=TaskView)


async def wait_view(
    handle: WorkflowHandle[Any, TaskView], pred: Callable[[TaskView], bool], within: float = 20
) -> TaskView:
    async def met() -> TaskView | None:
        view = await view_of(handle)
        return view if pred(view) else None

    result: TaskView = await async_wait_until(met, within, message="the view never matched")
    return result


async def test_joined_nodes_are_prewarmed_by_follow_units_and_the_task_completes_at_its_end(
    env: WorkflowEnvironment,
) -> None:
    mock = MockEngine(selection=listed(3))
    rounds = Rounds(
        script=[
            Take(nodes=["join-a", "join-b"], resource_version="12"),
            Take(nodes=["join-c"], resource_version="15"),
        ]
    )

    async def body(queue: str) -> tuple[TaskView, TaskView]:
        handle = await start(env.client, queue, spec(FollowSpec(duration_seconds=10)))
        mid = await wait_view(
            handle, lambda v: v.following is not None and v.following.nodes_added == 3
        )
        return mid, await handle.result()

    mid, final = await with_worker(env, mock, rounds, body)
    assert mid.status == TaskStatus.RUNNING and mid.phase == TaskPhase.FOLLOWING
    # The sweep's batches only: joined nodes are pulled by the follow units themselves.
    assert [c.nodes for c in mock.calls] == [["node-000", "node-001"], ["node-002"]]
    first, second, third = rounds.inputs[:3]
    assert first.resource_version == "10"  # the sweep's own listing
    assert first.covered == node_names(3)
    assert (first.unit, first.in_flight, first.max_nodes) == (3, 2, UNIT_NODES)
    assert second.resource_version == "12"
    assert second.covered == [*node_names(3), "join-a", "join-b"]
    assert second.unit == 4
    assert third.resource_version == "15"
    assert third.unit == 5  # unit 4 took a node: the next unit has the next number
    assert third.covered == [*node_names(3), "join-a", "join-b", "join-c"]
    assert final.status == TaskStatus.COMPLETED
    assert final.phase is None
    assert final.following is not None and final.following.nodes_added == 3
    p = final.progress
    assert (p.total_nodes, p.completed_nodes, p.total_batches, p.percentage) == (6, 6, 4, 100.0)
    assert final.finished_at is not None
    assert (final.finished_at - final.following.since).total_seconds() >= 10
    assert mock.cleanups == []


@pytest.mark.parametrize("pacing", list(Pacing))
async def test_follow_units_get_the_window_only_with_adaptive_pacing(
    env: WorkflowEnvironment, pacing: Pacing
) -> None:
    mock = MockEngine(selection=listed(2))
    rounds = Rounds(script=[Take(nodes=["join-a"], resource_version="12")])

    async def body(queue: str) -> TaskView:
        task = spec(FollowSpec(duration_seconds=10), pacing=pacing)
        handle = await start(env.client, queue, task)
        return await handle.result()

    final = await with_worker(env, mock, rounds, body)
    assert final.status == TaskStatus.COMPLETED and final.pacing == pacing
    assert final.progress.in_flight_window == 2  # batchSize: no 429 in either case
    windows = [i.pacing for i in [*mock.calls, *rounds.inputs]]
    if pacing == Pacing.FIXED:
        assert windows and all(w is None for w in windows)
    else:
        assert windows and all(w is not None and w.ceiling == 2 for w in windows)


async def test_the_phase_is_sweeping_then_following_and_percentage_counts_known_nodes(
    env: WorkflowEnvironment,
) -> None:
    mock = MockEngine(selection=listed(2))
    hold = asyncio.Event()
    rounds = Rounds(script=[Take(nodes=["join-a", "join-b"], resource_version="11", hold=hold)])

    async def body(queue: str) -> tuple[TaskView, TaskView]:
        handle = await start(env.client, queue, spec(FollowSpec()))
        # The joined nodes count as soon as the unit signals them, before any outcome.
        holding = await wait_view(handle, lambda v: v.progress.total_nodes == 4)
        hold.set()
        await wait_view(handle, lambda v: v.progress.completed_nodes == 4)
        await handle.cancel()
        return holding, await handle.result()

    holding, final = await with_worker(env, mock, rounds, body)
    assert holding.phase == TaskPhase.FOLLOWING
    assert holding.progress.percentage == 50.0  # 2 of the 4 nodes known so far
    assert holding.progress.total_batches == 2
    assert final.status == TaskStatus.CANCELLED
    assert final.following is not None and final.following.nodes_added == 2


async def test_delete_while_following_cancels_the_unit_and_cleans_up(
    env: WorkflowEnvironment,
) -> None:
    mock = MockEngine(selection=listed(1))
    rounds = Rounds(quiet_seconds=3600)

    async def body(queue: str) -> TaskView:
        handle = await start(env.client, queue, spec(FollowSpec()))
        await asyncio.wait_for(rounds.started.wait(), 20)
        await handle.cancel()
        return await handle.result()

    final = await with_worker(env, mock, rounds, body)
    assert final.status == TaskStatus.CANCELLED
    assert final.message == "Task cancelled by request"
    assert rounds.cancelled == 1
    assert len(mock.cleanups) == 1


async def test_with_follow_no_matching_node_at_the_start_waits_for_nodes(
    env: WorkflowEnvironment,
) -> None:
    mock = MockEngine(selection=NodeSelection(matched=0, resource_version="7"))
    rounds = Rounds(script=[Take(nodes=["join-a"], resource_version="9")])

    async def body(queue: str) -> TaskView:
        handle = await start(env.client, queue, spec(FollowSpec(duration_seconds=10)))
        return await handle.result()

    final = await with_worker(env, mock, rounds, body)
    assert final.status == TaskStatus.COMPLETED
    assert final.progress.total_nodes == 1 and final.progress.completed_nodes == 1
    assert rounds.inputs[0].resource_version == "7"


async def test_nodes_gone_leave_covered_so_a_rejoining_name_is_prewarmed_again(
    env: WorkflowEnvironment,
) -> None:
    mock = MockEngine(selection=listed(2))
    rounds = Rounds(
        script=[
            Take(gone=["node-000"], resource_version="11"),
            Take(nodes=["node-000"], resource_version="12"),
        ]
    )

    async def body(queue: str) -> TaskView:
        handle = await start(env.client, queue, spec(FollowSpec(duration_seconds=10)))
        return await handle.result()

    final = await with_worker(env, mock, rounds, body)
    assert rounds.inputs[1].covered == ["node-001"]
    assert rounds.inputs[2].covered == ["node-001", "node-000"]
    assert final.following is not None and final.following.nodes_added == 1
    assert final.progress.completed_nodes == 3  # node-000 twice: the sweep's and the rejoined


async def test_continue_as_new_carries_the_resource_version_covered_and_counters(
    env: WorkflowEnvironment,
) -> None:
    mock = MockEngine(selection=listed(2))
    joins = [Take(nodes=[f"join-{i}"], resource_version=str(20 + i)) for i in range(4)]
    rounds = Rounds(script=list(joins))

    async def body(queue: str) -> tuple[TaskView, WorkflowHandle[Any, TaskView]]:
        handle = await start(
            env.client,
            queue,
            spec(FollowSpec(duration_seconds=10)),
            state=EngineState(units_per_run=3),
        )
        return await handle.result(), handle

    final, handle = await with_worker(env, mock, rounds, body)
    assert final.status == TaskStatus.COMPLETED
    assert final.following is not None and final.following.nodes_added == 4
    assert final.progress.total_nodes == 6 and final.progress.completed_nodes == 6
    # Every round after a continue-as-new resumed where the previous run stopped.
    rvs = [i.resource_version for i in rounds.inputs]
    assert rvs[:5] == ["10", "20", "21", "22", "23"]
    assert all(r == "23" for r in rvs[5:])
    carried: list[EngineState] = []
    run_id: str | None = handle.first_execution_run_id
    while run_id is not None:
        h = env.client.get_workflow_handle(handle.id, run_id=run_id)
        events = [e async for e in h.fetch_history_events()]
        last = events[-1]
        if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            break
        attrs = last.workflow_execution_continued_as_new_event_attributes
        (inp,) = await pydantic_data_converter.decode(attrs.input.payloads, [PrewarmInput])
        assert inp.state is not None
        carried.append(inp.state)
        run_id = attrs.new_execution_run_id
    assert carried, "no continue-as-new"
    state = carried[0]
    assert state.following_since == final.following.since
    assert state.follow_rv in {"20", "21", "22", "23"}
    added = state.nodes_added
    assert state.covered == [*node_names(2), *[f"join-{i}" for i in range(added)]]
    assert state.progress.total_nodes == 2 + added
