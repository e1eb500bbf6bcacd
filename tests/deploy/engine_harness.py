"""The real engine in-process (worker.main.build_worker) against kubesim, for deploy/ops tests.

Tasks are started the way the API starts them: workflow ID = task ID, `IpsStatus` = pending.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client, WorkflowHandle

from common.engine import PrewarmInput
from common.models import TaskSpec, TaskStatus
from common.settings import Settings
from common.starting import start_prewarm_workflow
from common.temporal import SearchAttr
from kubesim.testing import SimHandle
from tests.waiting import async_wait_until
from worker.main import build_worker


def new_task_id() -> str:
    return f"task-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"


@dataclass
class Engine:
    client: Client
    settings: Settings
    sim: SimHandle

    async def start(self, spec: TaskSpec, task_id: str | None = None) -> WorkflowHandle[Any, Any]:
        task_id = task_id or new_task_id()
        return await start_prewarm_workflow(
            self.client,
            self.settings.temporal_task_queue,
            PrewarmInput(task_id=task_id, spec=spec, created_at=datetime.now(UTC)),
        )

    async def status(self, task_id: str) -> str | None:
        desc = await self.client.get_workflow_handle(task_id).describe()
        return desc.typed_search_attributes.get(SearchAttr.STATUS.key)

    async def wait_status(self, task_id: str, *wanted: str, within: float = 60) -> str:
        """Poll IpsStatus (what an operator sees) until it is one of `wanted`."""
        seen: list[str | None] = [None]

        def failure() -> str:
            return f"{task_id}: IpsStatus {seen[0]!r}, expected one of {wanted}"

        async def reached() -> str | None:
            status = seen[0] = await self.status(task_id)
            if status in wanted:
                return status
            if status is not None and TaskStatus(status).is_final:
                raise AssertionError(failure())  # it will not change any more
            return None

        return await async_wait_until(reached, within, interval=0.2, message=failure)


@asynccontextmanager
async def run_engine(
    client: Client, sim: SimHandle, *, k8s_namespace: str = "default", **settings: Any
) -> AsyncIterator[Engine]:
    """A worker on its own task queue, talking to `sim`; stopped on exit."""
    s = Settings(
        temporal_address=client.service_client.config.target_host,
        temporal_namespace=client.namespace,
        temporal_task_queue=f"ips-deploy-{uuid.uuid4().hex[:10]}",
        kubeconfig=sim.kubeconfig_path,
        k8s_namespace=k8s_namespace,
        metrics_port=0,
        temporal_metrics_port=0,
        **settings,
    )
    worker = await build_worker(client, s)
    async with worker:
        yield Engine(client, s, sim)
