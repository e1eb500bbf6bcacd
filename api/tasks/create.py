"""POST /api/v1/tasks: start one prewarm workflow per task, at most once per Idempotency-Key."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.auth import Principal
from api.tasks.guards import check_running_cap
from api.tasks.idempotency import MEMO_BODY_HASH, body_hash, reserve, task_started_first
from api.tasks.ids import new_task_id
from api.tasks.rpc import RPC_TIMEOUT, temporal_errors
from common.engine import PrewarmInput
from common.models import TaskCreated, TaskSpec, TaskStatus, utcnow
from common.settings import Settings
from common.starting import start_prewarm_workflow
from common.temporal import MEMO_OWNER, MEMO_TASK

log = logging.getLogger(__name__)


@dataclass
class CreateOutcome:
    task: TaskCreated
    created: bool


async def create_task(
    client: Client,
    settings: Settings,
    spec: TaskSpec,
    idempotency_key: str | None,
    caller: Principal,
) -> CreateOutcome:
    """The new task (created), or the one this Idempotency-Key already started (not created)."""
    task_queue = settings.temporal_task_queue
    digest = body_hash(spec)
    now = utcnow().replace(microsecond=0)
    task_id, created_at = new_task_id(now), now
    await check_running_cap(
        client, task_queue, settings.ips_max_running_tasks, idempotency_key, caller
    )
    if idempotency_key is not None:
        task_id, created_at = await reserve(
            client, task_queue, idempotency_key, digest, task_id, now, caller
        )
    task = TaskCreated(
        task_id=task_id,
        status=TaskStatus.PENDING,
        images=spec.images,
        batch_size=spec.batch_size,
        node_selector=spec.node_selector,
        created_at=created_at,
    )
    memo: dict[str, Any] = {
        MEMO_TASK: task.model_dump(mode="json"),
        MEMO_BODY_HASH: digest,
        MEMO_OWNER: caller.id,
    }
    try:
        async with temporal_errors("starting the task"):
            await start_prewarm_workflow(
                client,
                task_queue,
                PrewarmInput(task_id=task_id, spec=spec, created_at=created_at),
                idempotency_key=idempotency_key,
                memo=memo,
                rpc_timeout=RPC_TIMEOUT,
            )
    except WorkflowAlreadyStartedError:
        if idempotency_key is None:  # 32 random bits in the same second: just try again
            return await create_task(client, settings, spec, None, caller)
        # Another request with the same key (and body) got there first: the same task.
        return CreateOutcome(await task_started_first(client, task_queue, task), created=False)
    log.info(
        "task created: %d image(s), batch size %d",
        len(spec.images),
        spec.batch_size,
        extra={"taskId": task_id},
    )
    return CreateOutcome(task, created=True)
