"""Cancelling PrewarmWorkflow: while pending, listing, mid batch, with the batch worker dead,
during cleanup (time-skipping server, activities mocked by name)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import RetryState
from temporalio.testing import WorkflowEnvironment

from common.models import TaskStatus, TaskView
from tests.waiting import async_wait_until
from tests.workflows.conftest import MockEngine, failure, selection, start
from tests.workflows.runs import cancel_seen as _cancel_seen
from tests.workflows.runs import spec
from tests.workflows.runs import wait_for as _wait_for
from tests.workflows.runs import with_worker as _with_worker
from worker.main import build_worker

# The time-skipping test server runs these workflows: not in `make test-fast`.
pytestmark = pytest.mark.integration


async def test_cancel_while_pending(env: WorkflowEnvironment) -> None:
    mock = MockEngine(selection=selection(5))
    queue = f"engine-{uuid.uuid4().hex[:8]}"
    handle = await start(env.client, queue, spec())
    await handle.cancel()
    from common.settings import Settings

    async with await build_worker(
        env.client, Settings(), task_queue=queue, activities=mock.activities()
    ):
        view = await handle.result()
    assert view.status == TaskStatus.CANCELLED
    assert mock.calls == []
    assert view.progress.completed_nodes == 0


async def test_cancel_while_listing(env: WorkflowEnvironment) -> None:
    mock = MockEngine(selection=selection(5), hold_listing=True)

    async def body(queue: str) -> TaskView:
        handle = await start(env.client, queue, spec())
        await asyncio.wait_for(mock.holding.wait(), 10)
        await handle.cancel()
        return await handle.result()

    view = await _with_worker(env, mock, body)
    assert view.status == TaskStatus.CANCELLED
    assert mock.calls == []
    assert view.message == "Task cancelled by request"


async def test_cancel_mid_batch_freezes_progress_and_cleans_up(env: WorkflowEnvironment) -> None:
    mock = MockEngine(selection=selection(30), hold_unit=2, signal_first=4)

    async def body(queue: str) -> tuple[TaskView, TaskView]:
        handle = await start(env.client, queue, spec(batch_size=10))
        before = await _wait_for(handle, lambda v: v.progress.completed_nodes == 14)
        await handle.cancel()
        final = await handle.result()
        return before, final

    before, final = await _with_worker(env, mock, body)
    assert final.status == TaskStatus.CANCELLED
    assert final.progress == before.progress  # frozen at the cancel
    assert final.progress.current_batch == 2
    assert [c.unit for c in mock.calls] == [1, 2]  # no more Jobs after the cancel
    assert mock.events[-2:] == ["unit-2-cancelled", "cleanup"]  # clean-up after the activity
    assert final.finished_at is not None


@pytest.mark.integration
async def test_cancel_while_the_batch_worker_is_dead_ends_cancelled(
    dev_env: WorkflowEnvironment,
) -> None:
    """The DELETE arrives while the batch's worker is gone: the cancel cannot reach the
    activity, whose heartbeat then times out with retry_state CANCEL_REQUESTED. That is the
    cancel, not a failure."""
    mock = MockEngine(selection=selection(20), die_unit=2)

    async def body(queue: str) -> tuple[TaskView, list[Any]]:
        handle = await start(dev_env.client, queue, spec(batch_size=10))
        await asyncio.wait_for(mock.holding.wait(), 10)
        await handle.cancel()
        final = await handle.result()
        timeouts = [
            e.activity_task_timed_out_event_attributes
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT
        ]
        return final, timeouts

    final, timeouts = await _with_worker(dev_env, mock, body)
    assert [t.retry_state for t in timeouts] == [RetryState.CANCEL_REQUESTED.value]
    assert final.status == TaskStatus.CANCELLED, final.message
    assert final.message == "Task cancelled by request"
    assert final.progress.completed_nodes == 10
    assert mock.events[-1] == "cleanup"


async def test_cancel_during_cleanup_does_not_interrupt_it(env: WorkflowEnvironment) -> None:
    mock = MockEngine(selection=selection(5), hold_cleanup=True)
    mock.outcome = failure

    async def body(queue: str) -> TaskView:
        handle = await start(env.client, queue, spec(batch_size=5, max_failure_ratio=0.5))
        await asyncio.wait_for(mock.holding.wait(), 10)
        await handle.cancel()
        await async_wait_until(
            lambda: _cancel_seen(handle), 10, message="the cancel never reached the workflow"
        )
        mock.release.set()
        return await handle.result()

    view = await _with_worker(env, mock, body)
    assert view.status == TaskStatus.FAILED  # the outcome was already decided
    assert len(mock.cleanups) == 1
