"""Follow mode in PrewarmWorkflow (workflows/follow.py), with the activities mocked by name.

The watch round is scripted: each call pops the next result (nodes + resourceVersion), or, with
nothing scripted, waits a little and returns an empty round at the same resourceVersion. The
tests assert what each round was given (resourceVersion, covered nodes), the batches of joined
nodes, the counters, the phase, continue-as-new carrying the follow state, cancel and the end
of the duration, and the history events per joined node.
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
    ACTIVITY_WATCH_NODES,
    EngineState,
    NodeSelection,
    PrewarmInput,
    WatchNodesInput,
    WatchNodesResult,
)
from common.models import FollowSpec, TaskPhase, TaskSpec, TaskStatus, TaskView
from common.settings import Settings
from tests.waiting import async_wait_until
from tests.workflows.conftest import MockEngine, node_names, selection, start
from worker.main import build_worker

pytestmark = pytest.mark.integration


@dataclass
class Rounds:
    """The scripted watch_nodes activity."""

    script: list[WatchNodesResult] = field(default_factory=list)
    inputs: list[WatchNodesInput] = field(default_factory=list)
    quiet_seconds: float = 0.3
    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: int = 0

    def activity(self) -> Any:
        @activity.defn(name=ACTIVITY_WATCH_NODES)
        async def watch_nodes(inp: WatchNodesInput) -> WatchNodesResult:
            self.inputs.append(inp)
            self.started.set()
            if self.script:
                return self.script.pop(0)
            try:
                activity.heartbeat()
                await asyncio.sleep(min(self.quiet_seconds, inp.max_seconds))
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            return WatchNodesResult(resource_version=inp.resource_version)

        return watch_nodes


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


async def test_joined_nodes_are_prewarmed_in_batches_and_the_task_completes_at_its_end(
    env: WorkflowEnvironment,
) -> None:
    mock = MockEngine(selection=listed(3))
    rounds = Rounds(
        script=[
            WatchNodesResult(nodes=["join-a", "join-b"], resource_version="12"),
            # join-a again (a relist): counted once; node-001 was in the sweep.
            WatchNodesResult(nodes=["join-a", "join-c", "node-001"], resource_version="15"),
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
    assert [c.nodes for c in mock.calls] == [
        ["node-000", "node-001"],
        ["node-002"],
        ["join-a", "join-b"],
        ["join-c"],
    ]
    first, second, third = rounds.inputs[:3]
    assert first.resource_version == "10"  # the sweep's own listing
    assert first.covered == node_names(3)
    assert first.max_nodes == 2
    assert second.resource_version == "12"
    assert second.covered == [*node_names(3), "join-a", "join-b"]
    assert third.resource_version == "15"
    assert third.covered == [*node_names(3), "join-a", "join-b", "join-c"]
    assert final.status == TaskStatus.COMPLETED
    assert final.phase is None
    assert final.following is not None and final.following.nodes_added == 3
    p = final.progress
    assert (p.total_nodes, p.completed_nodes, p.total_batches, p.percentage) == (6, 6, 4, 100.0)
    assert final.finished_at is not None
    assert (final.finished_at - final.following.since).total_seconds() >= 10
    assert mock.cleanups == []


async def test_the_phase_is_sweeping_then_following_and_percentage_counts_known_nodes(
    env: WorkflowEnvironment,
) -> None:
    mock = MockEngine(selection=listed(2), hold_unit=2, signal_first=0)
    rounds = Rounds(script=[WatchNodesResult(nodes=["join-a", "join-b"], resource_version="11")])

    async def body(queue: str) -> tuple[TaskView, TaskView]:
        handle = await start(env.client, queue, spec(FollowSpec()))
        holding = await wait_view(handle, lambda v: v.progress.total_nodes == 4)
        mock.release.set()
        await wait_view(handle, lambda v: v.progress.completed_nodes == 4)
        await handle.cancel()
        return holding, await handle.result()

    holding, final = await with_worker(env, mock, rounds, body)
    assert holding.phase == TaskPhase.FOLLOWING
    assert holding.progress.percentage == 50.0  # 2 of the 4 nodes known so far
    assert holding.progress.total_batches == 2
    assert final.status == TaskStatus.CANCELLED
    assert final.following is not None and final.following.nodes_added == 2


async def test_delete_while_watching_cancels_the_round_and_cleans_up(
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
    rounds = Rounds(script=[WatchNodesResult(nodes=["join-a"], resource_version="9")])

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
            WatchNodesResult(gone=["node-000"], resource_version="11"),
            WatchNodesResult(nodes=["node-000"], resource_version="12"),
        ]
    )

    async def body(queue: str) -> TaskView:
        handle = await start(env.client, queue, spec(FollowSpec(duration_seconds=10)))
        return await handle.result()

    final = await with_worker(env, mock, rounds, body)
    assert rounds.inputs[1].covered == ["node-001"]
    assert rounds.inputs[2].covered == ["node-001", "node-000"]
    assert final.following is not None and final.following.nodes_added == 1
    assert [c.nodes for c in mock.calls][-1] == ["node-000"]


async def test_continue_as_new_carries_the_resource_version_covered_and_counters(
    env: WorkflowEnvironment,
) -> None:
    mock = MockEngine(selection=listed(2))
    joins = [WatchNodesResult(nodes=[f"join-{i}"], resource_version=str(20 + i)) for i in range(4)]
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
