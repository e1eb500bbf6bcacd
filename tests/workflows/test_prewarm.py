"""PrewarmWorkflow against the time-skipping test server, with the activities mocked by name:
batches, rolling windows, progress, the failure ratio, activity retries, continue-as-new."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from common.engine import EngineState, NodeOutcome, PrewarmInput
from common.models import (
    FailureReason,
    SkippedNodeDetail,
    SkipReason,
    Strategy,
    TaskStatus,
    TaskView,
)
from common.observability import TASKS_FINISHED
from tests.workflows.conftest import MockEngine, failure, node_names, selection, start
from tests.workflows.runs import spec
from tests.workflows.runs import wait_for as _wait_for
from tests.workflows.runs import with_worker as _with_worker

# The time-skipping test server runs these workflows: not in `make test-fast`.
pytestmark = pytest.mark.integration


async def test_batch_order_and_exact_counts(env: WorkflowEnvironment) -> None:
    skipped = [SkippedNodeDetail(node_name="zz-cordoned", reason=SkipReason.CORDONED)]
    mock = MockEngine(
        selection=selection(25, warm=3, skipped=skipped),
        outcome=lambda n: failure(n) if n == "node-012" else NodeOutcome(node_name=n, ok=True),
    )

    async def body(queue: str) -> TaskView:
        handle = await start(env.client, queue, spec(batch_size=10))
        return await handle.result()

    finished_before = TASKS_FINISHED.labels("completed")._value.get()
    view = await _with_worker(env, mock, body)
    assert TASKS_FINISHED.labels("completed")._value.get() == finished_before + 1
    assert [c.nodes for c in mock.calls] == [
        node_names(25)[0:10],
        node_names(25)[10:20],
        node_names(25)[20:25],
    ]
    assert [c.in_flight for c in mock.calls] == [10, 10, 5]
    assert [(c.unit, c.total_units) for c in mock.calls] == [(1, 3), (2, 3), (3, 3)]
    assert view.status == TaskStatus.COMPLETED
    p = view.progress
    assert (p.total_nodes, p.completed_nodes, p.failed_nodes) == (28, 24, 1)
    assert (p.already_warm_nodes, p.skipped_nodes) == (3, 1)
    assert (p.current_batch, p.total_batches, p.percentage) == (3, 3, 100.0)
    assert [d.node_name for d in view.failed_node_details] == ["node-012"]
    assert view.failed_node_details[0].reason == FailureReason.IMAGE_NOT_FOUND
    assert view.skipped_node_details == skipped
    assert view.started_at is not None and view.finished_at is not None
    assert mock.cleanups == []  # nothing to clean after a normal completion


async def test_rolling_keeps_batch_size_in_flight_over_one_window(
    env: WorkflowEnvironment,
) -> None:
    mock = MockEngine(selection=selection(25))

    async def body(queue: str) -> TaskView:
        handle = await start(env.client, queue, spec(batch_size=5, strategy=Strategy.ROLLING))
        return await handle.result()

    view = await _with_worker(env, mock, body)
    assert len(mock.calls) == 1
    assert mock.calls[0].nodes == node_names(25)
    assert mock.calls[0].in_flight == 5
    assert view.status == TaskStatus.COMPLETED
    assert view.progress.completed_nodes == 25
    assert (view.progress.current_batch, view.progress.total_batches) == (1, 1)


async def test_rolling_windows_are_capped(env: WorkflowEnvironment) -> None:
    mock = MockEngine(selection=selection(130))

    async def body(queue: str) -> TaskView:
        handle = await start(env.client, queue, spec(batch_size=6, strategy=Strategy.ROLLING))
        return await handle.result()

    view = await _with_worker(env, mock, body)
    assert [len(c.nodes) for c in mock.calls] == [60, 60, 10]
    assert all(c.in_flight == 6 for c in mock.calls)
    assert view.progress.completed_nodes == 130


async def test_progress_moves_within_a_batch(env: WorkflowEnvironment) -> None:
    mock = MockEngine(selection=selection(10), hold_unit=1, signal_first=3)
    mock.outcome = lambda n: failure(n) if n == "node-001" else NodeOutcome(node_name=n, ok=True)

    async def body(queue: str) -> tuple[TaskView, TaskView]:
        handle = await start(env.client, queue, spec(batch_size=10))
        mid = await _wait_for(handle, lambda v: v.progress.completed_nodes == 2)
        mock.release.set()
        return mid, await handle.result()

    mid, final = await _with_worker(env, mock, body)
    assert mid.status == TaskStatus.RUNNING
    assert (mid.progress.completed_nodes, mid.progress.failed_nodes) == (2, 1)
    assert mid.progress.current_batch == 1
    assert mid.progress.percentage == 30.0
    assert [d.node_name for d in mid.failed_node_details] == ["node-001"]
    # The activity's result repeats the signalled nodes: they are counted once.
    assert (final.progress.completed_nodes, final.progress.failed_nodes) == (9, 1)


async def test_max_failure_ratio_at_batch_end_stops_creating_jobs(
    env: WorkflowEnvironment,
) -> None:
    bad = set(node_names(20)[5:10])
    mock = MockEngine(
        selection=selection(20),
        outcome=lambda n: failure(n) if n in bad else NodeOutcome(node_name=n, ok=True),
    )

    async def body(queue: str) -> TaskView:
        handle = await start(env.client, queue, spec(batch_size=5, max_failure_ratio=0.2))
        return await handle.result()

    view = await _with_worker(env, mock, body)
    assert [c.unit for c in mock.calls] == [1, 2]  # batches 3 and 4 never started
    assert view.status == TaskStatus.FAILED
    assert view.message is not None and "maxFailureRatio 0.2" in view.message
    assert (view.progress.completed_nodes, view.progress.failed_nodes) == (5, 5)
    assert len(mock.cleanups) == 1


async def test_max_failure_ratio_mid_batch_cancels_the_running_activity(
    env: WorkflowEnvironment,
) -> None:
    mock = MockEngine(selection=selection(10), hold_unit=1, signal_first=1)
    mock.outcome = failure

    async def body(queue: str) -> TaskView:
        handle = await start(env.client, queue, spec(batch_size=10, max_failure_ratio=0.0))
        return await handle.result()

    view = await _with_worker(env, mock, body)
    assert view.status == TaskStatus.FAILED
    assert view.progress.failed_nodes == 1
    assert mock.cancelled_units == [1]
    assert mock.events[-2:] == ["unit-1-cancelled", "cleanup"]


async def test_batch_activity_retries_are_bounded_by_time_not_attempts(
    env: WorkflowEnvironment,
) -> None:
    """A worker shutdown or crash costs an attempt: the batch activity has unlimited attempts,
    bounded by schedule-to-close, and the measured heartbeat timeout; its input is slim."""
    from workflows.timeouts import PREWARM_HEARTBEAT_TIMEOUT

    mock = MockEngine(selection=selection(5))

    async def body(queue: str) -> list[Any]:
        handle = await start(env.client, queue, spec(batch_size=5, node_names=node_names(5)))
        await handle.result()
        return [
            e.activity_task_scheduled_event_attributes
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and e.activity_task_scheduled_event_attributes.activity_type.name == "prewarm_nodes"
        ]

    [attrs] = await _with_worker(env, mock, body)
    assert attrs.retry_policy.maximum_attempts == 0
    start_to_close = attrs.start_to_close_timeout.ToTimedelta()
    schedule_to_close = attrs.schedule_to_close_timeout.ToTimedelta()
    assert schedule_to_close > start_to_close
    assert attrs.heartbeat_timeout.ToTimedelta() == PREWARM_HEARTBEAT_TIMEOUT
    assert "nodeNames" not in attrs.input.payloads[0].data.decode()


async def test_continue_as_new_carries_state_exactly(env: WorkflowEnvironment) -> None:
    skipped = [SkippedNodeDetail(node_name="x-notready", reason=SkipReason.NOT_READY)]
    mock = MockEngine(
        selection=selection(7, warm=2, skipped=skipped),
        outcome=lambda n: failure(n) if n == "node-003" else NodeOutcome(node_name=n, ok=True),
    )

    async def body(queue: str) -> tuple[TaskView, WorkflowHandle[Any, TaskView]]:
        handle = await start(
            env.client, queue, spec(batch_size=2), state=EngineState(units_per_run=1)
        )
        return await handle.result(), handle

    view, handle = await _with_worker(env, mock, body)
    assert [c.nodes for c in mock.calls] == [
        ["node-000", "node-001"],
        ["node-002", "node-003"],
        ["node-004", "node-005"],
        ["node-006"],
    ]
    assert view.status == TaskStatus.COMPLETED
    p = view.progress
    assert (p.total_nodes, p.completed_nodes, p.failed_nodes, p.already_warm_nodes) == (
        9,
        6,
        1,
        2,
    )
    assert (p.skipped_nodes, p.current_batch, p.total_batches) == (1, 4, 4)
    assert [d.node_name for d in view.failed_node_details] == ["node-003"]
    assert view.skipped_node_details == skipped

    # Walk the chain of runs: each ends in ContinuedAsNew with the exact state so far.
    desc = await handle.describe()
    first_run = handle.first_execution_run_id
    assert first_run is not None and desc.run_id != first_run
    run_id: str | None = first_run
    carried: list[EngineState] = []
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
    assert len(carried) == 3
    assert [s.units_done for s in carried] == [1, 2, 3]
    assert [s.pending for s in carried] == [node_names(7)[2:], node_names(7)[4:], ["node-006"]]
    assert [s.progress.completed_nodes for s in carried] == [2, 3, 5]
    assert [s.progress.failed_nodes for s in carried] == [0, 1, 1]
    assert carried[1].failed_node_details == view.failed_node_details
    assert all(s.skipped_node_details == skipped for s in carried)
    assert [s.runs for s in carried] == [2, 3, 4]
    assert all(s.status == TaskStatus.RUNNING and s.started_at == view.started_at for s in carried)
