"""What the engine-on-kubesim tests share: a module's kubesim cluster, the real engine (a worker
in this process) against it, and starting a task on that worker.

A module declares its cluster with `sim = sim_fixture(...)` and runs the engine with
`async with engine(dev_env, sim, **settings) as queue:`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from common.engine import PrewarmInput
from common.models import TaskSpec, TaskView
from common.settings import Settings
from common.starting import start_prewarm_workflow
from kubesim.testing import SimHandle, start_sim
from tests.waiting import async_wait_until
from tests.workflows.conftest import task_id
from worker.main import build_worker


def sim_fixture(**sim_options: Any) -> Any:
    """A module-scoped `sim` fixture: one kubesim cluster, `start_sim(**sim_options)`, for the
    whole module (its tests use distinct images or nodes)."""

    @pytest.fixture(scope="module")
    def sim() -> Iterator[SimHandle]:
        with start_sim(**sim_options) as handle:
            yield handle

    return sim


def engine_settings(sim: SimHandle, **overrides: Any) -> Settings:
    """The worker's settings against `sim`: no client-side throttling, a short Unschedulable
    grace, no metrics ports."""
    base: dict[str, Any] = {
        "kubeconfig": sim.kubeconfig_path,
        "k8s_qps": 500.0,
        "k8s_burst": 500,
        "unschedulable_grace_seconds": 2,
        "metrics_port": 0,
        "temporal_metrics_port": 0,
    }
    base.update(overrides)
    return Settings(**base)


@asynccontextmanager
async def engine(env: WorkflowEnvironment, sim: SimHandle, **settings: Any) -> AsyncIterator[str]:
    """A real worker (workflow and activities) on a task queue of its own; yields the queue."""
    queue = f"engine-{uuid.uuid4().hex[:8]}"
    async with await build_worker(env.client, engine_settings(sim, **settings), task_queue=queue):
        yield queue


async def start_task(client: Client, queue: str, spec: TaskSpec) -> WorkflowHandle[Any, TaskView]:
    return await start_prewarm_workflow(
        client, queue, PrewarmInput(task_id=task_id(), spec=spec, created_at=datetime.now(UTC))
    )


async def run_task(client: Client, queue: str, spec: TaskSpec) -> TaskView:
    """Start a task and wait for its final view."""
    return await (await start_task(client, queue, spec)).result()


async def until(pred: Callable[[], Any], within: float = 60.0) -> Any:
    return await async_wait_until(pred, within, interval=0.1, message="condition not met in time")
