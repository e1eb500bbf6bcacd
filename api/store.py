"""`TaskStore`: the task operations the routers call, over one lazily fetched Temporal client.

The API keeps no state of its own; every answer is read from Temporal. The operations live in
`api/tasks/` (one module per idea); this facade binds them to the client and the settings, and
shares the reads (`TaskReads`, api/shared_reads.py): concurrent identical GETs make one Temporal
round trip, and a running task's view or a list page is reused for TASK_VIEW_CACHE_SECONDS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio.client import Client

from api.auth import ANONYMOUS, Principal
from api.shared_reads import Shared, SharedReads
from api.tasks.cancel import CancelOutcome, cancel_task
from api.tasks.create import CreateOutcome, create_task
from api.tasks.ids import check_task_id
from api.tasks.listing import list_tasks
from api.tasks.views import get_task
from common.models import TaskList, TaskSpec, TaskStatus, TaskView
from common.settings import Settings

__all__ = ["CancelOutcome", "CreateOutcome", "TaskReads", "TaskStore"]

# Bounds of the caches. Expired entries are dropped as new ones come, so in practice they hold
# what was read in the last second or so; the bounds cap what a burst of distinct reads can keep.
# A view is a few KiB (failure details are capped near 128 KiB), a list page of 100 about 30 KiB.
VIEW_ENTRIES = 4096
LIST_ENTRIES = 256

ListKey = tuple[TaskStatus | None, int, int, str | None]


def _still_running(view: TaskView) -> bool:
    """Only an open task's view is kept. A closed task needs no worker (describe + its close
    event), `ips watch` stops at the close, and an operator's `temporal workflow reset` can
    reopen it behind this process's back: the saving would be small and the staleness long."""
    return not view.status.is_final


class TaskReads:
    """The shared reads of the task endpoints: one per API process (`app.state.task_reads`),
    created with the app. Writes this process makes drop what they may have changed, so a
    DELETE then a GET shows the cancel (read-your-writes within one process; replicas behind a
    load balancer can each serve an answer up to TASK_VIEW_CACHE_SECONDS old)."""

    def __init__(self, settings: Settings) -> None:
        ttl = settings.task_view_cache_seconds
        self.views: SharedReads[str, TaskView] = SharedReads(ttl, VIEW_ENTRIES)
        self.lists: SharedReads[ListKey, TaskList] = SharedReads(ttl, LIST_ENTRIES)

    def task_written(self, task_id: str) -> None:
        """A task was created, cancelled or otherwise changed: its view and every list page."""
        self.views.invalidate(task_id)
        self.lists.clear()

    def tasks_written(self) -> None:
        """Tasks not named one by one changed (a schedule's runs were cancelled, a run started)."""
        self.views.clear()
        self.lists.clear()


class TaskStore:
    """The task operations over one Temporal client; cheap to build per request.

    The client is fetched on the first operation, not at construction, so that a request with
    bad input gets its 400 (and a malformed task ID its 404) even while Temporal is down.
    """

    def __init__(
        self,
        get_client: Callable[[], Awaitable[Client]],
        settings: Settings,
        reads: TaskReads | None = None,
    ) -> None:
        self._get_client = get_client
        self.settings = settings
        self.queue = settings.temporal_task_queue
        # Without one (a caller outside a request), a private one: single-flight within it only.
        self.reads = reads if reads is not None else TaskReads(settings)

    async def create(
        self, spec: TaskSpec, idempotency_key: str | None, caller: Principal = ANONYMOUS
    ) -> CreateOutcome:
        client = await self._get_client()
        outcome = await create_task(client, self.settings, spec, idempotency_key, caller)
        self.reads.task_written(outcome.task.task_id)
        return outcome

    async def get(self, task_id: str) -> TaskView:
        return (await self.read(task_id)).value

    async def read(self, task_id: str) -> Shared[TaskView]:
        """The task's view, shared with concurrent readers and kept briefly while it runs."""
        check_task_id(task_id)
        client = await self._get_client()
        return await self.reads.views.read(
            task_id, lambda: get_task(client, self.queue, task_id), keep=_still_running
        )

    async def list_tasks(
        self, status: TaskStatus | None, limit: int, offset: int, schedule_id: str | None = None
    ) -> TaskList:
        return (await self.read_list(status, limit, offset, schedule_id)).value

    async def read_list(
        self, status: TaskStatus | None, limit: int, offset: int, schedule_id: str | None = None
    ) -> Shared[TaskList]:
        """A list page, shared by identical concurrent lists (the same parameters) and kept
        briefly: it comes from visibility alone, the same for every reader, and visibility
        itself lags about a second behind the tasks."""
        client = await self._get_client()
        return await self.reads.lists.read(
            (status, limit, offset, schedule_id),
            lambda: list_tasks(client, self.queue, status, limit, offset, schedule_id),
        )

    async def cancel(self, task_id: str, caller: Principal = ANONYMOUS) -> CancelOutcome:
        check_task_id(task_id)
        try:
            return await cancel_task(await self._get_client(), self.queue, task_id, caller)
        finally:  # whatever the outcome: a failed or unconfirmed cancel may still take effect
            self.reads.task_written(task_id)
