"""Helpers for the PrewarmWorkflow tests: a worker around a test body, a spec, waits on the
progress query and on a cancel in the history."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from common.models import TaskSpec, TaskView
from tests.waiting import async_wait_until
from tests.workflows.conftest import MockEngine
from worker.main import build_worker


async def with_worker(
    env: WorkflowEnvironment, mock: MockEngine, body: Callable[[str], Awaitable[Any]]
) -> Any:
    queue = f"engine-{uuid.uuid4().hex[:8]}"
    from common.settings import Settings

    worker = await build_worker(
        env.client, Settings(), task_queue=queue, activities=mock.activities()
    )
    async with worker:
        return await body(queue)


def spec(**kw: Any) -> TaskSpec:
    base: dict[str, Any] = {"images": ["nginx:latest", "redis:7"], "batch_size": 10}
    base.update(kw)
    return TaskSpec(**base)


async def wait_for(
    handle: WorkflowHandle[Any, TaskView], pred: Callable[[TaskView], bool], within: float = 10
) -> TaskView:
    seen: list[TaskView] = []

    async def met() -> TaskView | None:
        seen[:] = [await handle.query("progress", result_type=TaskView)]
        return seen[0] if pred(seen[0]) else None

    return await async_wait_until(
        met, within, message=lambda: f"condition not met; last view: {seen[0] if seen else None}"
    )


async def cancel_seen(handle: WorkflowHandle[Any, TaskView]) -> bool:
    """The cancel request is in the history and a workflow task has completed after it."""
    kinds = [e.event_type for e in (await handle.fetch_history()).events]
    asked = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED
    if asked not in kinds:
        return False
    return EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in kinds[kinds.index(asked) :]
