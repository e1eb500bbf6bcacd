"""`TaskStore`: the task operations the routers call, over one lazily fetched Temporal client.

The API keeps no state; every answer is read from Temporal. The operations live in `api/tasks/`
(one module per idea); this facade only binds them to the client and the settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio.client import Client

from api.auth import ANONYMOUS, Principal
from api.tasks.cancel import CancelOutcome, cancel_task
from api.tasks.create import CreateOutcome, create_task
from api.tasks.ids import check_task_id
from api.tasks.listing import list_tasks
from api.tasks.views import get_task
from common.models import TaskList, TaskSpec, TaskStatus, TaskView
from common.settings import Settings

__all__ = ["CancelOutcome", "CreateOutcome", "TaskStore"]


class TaskStore:
    """The task operations over one Temporal client; cheap to build per request.

    The client is fetched on the first operation, not at construction, so that a request with
    bad input gets its 400 (and a malformed task ID its 404) even while Temporal is down.
    """

    def __init__(self, get_client: Callable[[], Awaitable[Client]], settings: Settings) -> None:
        self._get_client = get_client
        self.settings = settings
        self.queue = settings.temporal_task_queue

    async def create(
        self, spec: TaskSpec, idempotency_key: str | None, caller: Principal = ANONYMOUS
    ) -> CreateOutcome:
        client = await self._get_client()
        return await create_task(client, self.settings, spec, idempotency_key, caller)

    async def get(self, task_id: str) -> TaskView:
        check_task_id(task_id)
        return await get_task(await self._get_client(), self.queue, task_id)

    async def list_tasks(
        self, status: TaskStatus | None, limit: int, offset: int, schedule_id: str | None = None
    ) -> TaskList:
        return await list_tasks(
            await self._get_client(), self.queue, status, limit, offset, schedule_id
        )

    async def cancel(self, task_id: str, caller: Principal = ANONYMOUS) -> CancelOutcome:
        check_task_id(task_id)
        return await cancel_task(await self._get_client(), self.queue, task_id, caller)
