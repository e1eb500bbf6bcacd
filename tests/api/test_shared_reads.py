"""Shared reads (api/shared_reads.py): single-flight, the short cache of a running task's view
and of list pages, invalidation by writes, and the headers that say so.

Against a fake Temporal client that counts its calls: the figures asserted are how many
describes and queries reached it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus as WES
from temporalio.common import TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

import api.store
import api.tasks.views
from api.errors import TaskNotFound, TemporalUnavailable
from api.main import create_app
from api.shared_reads import SharedReads
from api.store import TaskReads, TaskStore
from api.tasks.cancel import CancelOutcome
from api.tasks.ids import new_task_id
from common.models import Progress, TaskList, TaskStatus, TaskView
from common.settings import Settings
from common.temporal import WORKFLOW_NAME

pytestmark = pytest.mark.unit

QUEUE = "ips-shared-reads"
TASKS = "/api/v1/tasks"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTemporal:
    """What `get_task` and `list_tasks` use of a Temporal client, counting the calls.

    Each answer takes `delay` seconds, so concurrent readers overlap. The query's
    completedNodes is its call number: a reused answer is told from a fresh one."""

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.status = WES.RUNNING
        self.error: Exception | None = None
        self.describes = 0
        self.queries = 0
        self.counts = 0
        self.lists = 0

    @property
    def calls(self) -> int:
        return self.describes + self.queries + self.counts + self.lists

    def get_workflow_handle(self, task_id: str, run_id: str | None = None) -> _Handle:
        return _Handle(self, task_id)

    async def count_workflows(self, query: str, **_: Any) -> Any:
        self.counts += 1
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return SimpleNamespace(count=0)

    def list_workflows(self, query: str, **_: Any) -> Any:
        self.lists += 1
        raise AssertionError("an empty list is never fetched")


class _Handle:
    def __init__(self, fake: FakeTemporal, task_id: str) -> None:
        self.fake = fake
        self.task_id = task_id

    async def describe(self, **_: Any) -> Any:
        self.fake.describes += 1
        await asyncio.sleep(self.fake.delay)
        if self.fake.error is not None:
            raise self.fake.error
        return SimpleNamespace(
            id=self.task_id,
            status=self.fake.status,
            workflow_type=WORKFLOW_NAME,
            task_queue=QUEUE,
            typed_search_attributes=TypedSearchAttributes([]),
        )

    async def query(self, *_: Any, **__: Any) -> TaskView:
        self.fake.queries += 1
        call = self.fake.queries
        await asyncio.sleep(self.fake.delay)
        return _view(self.task_id, TaskStatus.RUNNING, completed=call)


def _view(task_id: str, status: TaskStatus, completed: int = 0) -> TaskView:
    return TaskView(
        task_id=task_id,
        status=status,
        images=["nginx:1"],
        batch_size=1,
        node_selector={},
        progress=Progress(total_nodes=100, completed_nodes=completed),
        created_at=datetime(2026, 1, 16, tzinfo=UTC),
    )


def _store(fake: FakeTemporal, ttl: float = 0.5, clock: Clock | None = None) -> TaskStore:
    settings = Settings(temporal_task_queue=QUEUE, task_view_cache_seconds=ttl, ips_auth="none")
    reads = TaskReads(settings)
    if clock is not None:
        reads.views = SharedReads(ttl, 100, clock=clock)
        reads.lists = SharedReads(ttl, 100, clock=clock)

    async def get_client() -> Any:
        return fake

    return TaskStore(get_client, settings, reads)


def _task_id() -> str:
    return new_task_id(datetime.now(UTC))


def _rpc_error(status: RPCStatusCode) -> RPCError:
    return RPCError("fake", status, b"")


async def test_concurrent_gets_of_one_task_make_one_describe_and_one_query() -> None:
    fake = FakeTemporal()
    store = _store(fake)
    task_id = _task_id()
    reads = await asyncio.gather(*(store.read(task_id) for _ in range(20)))
    assert (fake.describes, fake.queries) == (1, 1)
    assert len({id(r.value) for r in reads}) == 1
    assert sum(not r.collapsed for r in reads) == 1  # one lookup, the other 19 joined it
    other = await store.read(_task_id())  # another task: its own lookup
    assert (fake.describes, fake.queries) == (2, 2) and not other.hit


async def test_within_the_ttl_no_temporal_call_and_after_it_a_fresh_one() -> None:
    fake, clock = FakeTemporal(delay=0), Clock()
    store = _store(fake, ttl=0.5, clock=clock)
    task_id = _task_id()
    first = await store.read(task_id)
    clock.now += 0.4
    second = await store.read(task_id)
    assert fake.calls == 2 and second.hit and second.value is first.value
    assert second.headers() == {"Age": "0", "Cache-Status": "ips-api; hit"}
    clock.now += 0.2  # 0.6 s after the lookup started
    third = await store.read(task_id)
    assert fake.calls == 4 and not third.hit
    assert third.value.progress.completed_nodes > first.value.progress.completed_nodes


async def test_a_cancel_drops_the_view_even_when_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTemporal(delay=0)
    store = _store(fake, ttl=60)
    task_id = _task_id()
    outcomes: list[CancelOutcome | Exception] = [
        CancelOutcome(task_id, TaskStatus.CANCELLED),
        TemporalUnavailable("down"),
    ]

    async def cancel_task(*_: Any) -> CancelOutcome:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(api.store, "cancel_task", cancel_task)
    for _ in range(2):
        await store.read(task_id)
        assert (await store.read(task_id)).hit
        calls = fake.calls
        try:
            await store.cancel(task_id)
        except TemporalUnavailable:
            pass
        assert not (await store.read(task_id)).hit
        assert fake.calls == calls + 2


async def test_a_cancel_during_a_lookup_keeps_its_answer_out() -> None:
    """A GET in flight when the DELETE lands may carry the running view from before the cancel:
    readers after the DELETE neither join it nor get it from the cache."""
    fake = FakeTemporal(delay=0.1)
    store = _store(fake, ttl=60)
    task_id = _task_id()
    before = asyncio.create_task(store.read(task_id))
    await asyncio.sleep(0.02)
    store.reads.task_written(task_id)  # what a DELETE does once the cancel is requested
    after = await store.read(task_id)
    await before
    assert not after.collapsed and fake.describes == 2
    assert (await store.read(task_id)).value is after.value is not (await before).value


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_rpc_error(RPCStatusCode.NOT_FOUND), TaskNotFound),
        (_rpc_error(RPCStatusCode.UNAVAILABLE), TemporalUnavailable),
    ],
)
async def test_an_error_is_shared_by_concurrent_readers_but_never_kept(
    error: Exception, expected: type[Exception]
) -> None:
    fake = FakeTemporal()
    fake.error = error
    store = _store(fake, ttl=60)
    task_id = _task_id()
    results = await asyncio.gather(*(store.read(task_id) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, expected) for r in results) and fake.describes == 1
    fake.error = None
    assert not (await store.read(task_id)).hit
    assert fake.describes == 2 and len(store.reads.views) == 1


async def test_ttl_zero_keeps_nothing_but_still_shares_the_lookup() -> None:
    fake = FakeTemporal()
    store = _store(fake, ttl=0)
    task_id = _task_id()
    await asyncio.gather(*(store.read(task_id) for _ in range(10)))
    assert (fake.describes, fake.queries) == (1, 1)
    again = await store.read(task_id)
    assert not again.hit and (fake.describes, fake.queries) == (2, 2)
    assert len(store.reads.views) == 0


async def test_a_closed_task_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTemporal(delay=0)
    fake.status = WES.COMPLETED

    async def closed_view(_client: Any, desc: Any) -> TaskView:
        return _view(desc.id, TaskStatus.COMPLETED, completed=100)

    monkeypatch.setattr(api.tasks.views, "closed_view", closed_view)
    store = _store(fake, ttl=60)
    task_id = _task_id()
    for expected_describes in (1, 2):
        shared = await store.read(task_id)
        assert shared.value.status == TaskStatus.COMPLETED and not shared.hit
        assert fake.describes == expected_describes
    assert len(store.reads.views) == 0


async def test_the_cache_is_bounded_least_recently_used_first() -> None:
    clock = Clock()
    reads: SharedReads[int, int] = SharedReads(60, 3, clock=clock)
    loads: list[int] = []

    def loader(key: int) -> Any:
        async def load() -> int:
            loads.append(key)
            return key

        return load

    for key in (1, 2, 3):
        await reads.read(key, loader(key))
    assert (await reads.read(1, loader(1))).hit  # 1 is now the most recently used
    await reads.read(4, loader(4))  # evicts 2
    assert len(reads) == 3
    assert (await reads.read(1, loader(1))).hit and (await reads.read(3, loader(3))).hit
    assert not (await reads.read(2, loader(2))).hit
    assert loads == [1, 2, 3, 4, 2]


async def test_a_reader_that_goes_away_does_not_cancel_the_others() -> None:
    reads: SharedReads[str, str] = SharedReads(60, 10)
    release = asyncio.Event()
    calls = 0

    async def load() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "view"

    leaver = asyncio.create_task(reads.read("k", load))
    stayer = asyncio.create_task(reads.read("k", load))
    await asyncio.sleep(0.01)
    leaver.cancel()
    release.set()
    assert (await stayer).value == "view" and calls == 1
    assert leaver.cancelled()


async def test_identical_concurrent_lists_share_one_lookup_and_a_create_drops_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeTemporal()
    store = _store(fake, ttl=60)
    pages = await asyncio.gather(*(store.read_list(None, 100, 0) for _ in range(10)))
    assert fake.counts == 1 and all(isinstance(p.value, TaskList) for p in pages)
    await store.read_list(TaskStatus.RUNNING, 100, 0)  # other parameters: another lookup
    assert fake.counts == 2
    assert (await store.read_list(None, 100, 0)).hit and fake.counts == 2

    async def create_task(*_: Any) -> Any:
        return SimpleNamespace(task=SimpleNamespace(task_id=_task_id()), created=True)

    monkeypatch.setattr(api.store, "create_task", create_task)
    await store.create(None, None)  # type: ignore[arg-type]
    assert not (await store.read_list(None, 100, 0)).hit and fake.counts == 3


async def test_the_endpoints_say_how_an_answer_was_obtained() -> None:
    """`Age` (RFC 9111) and `Cache-Status` (RFC 9211) on GET of a task and of the list."""
    fake = FakeTemporal(delay=0.05)
    app = create_app(Settings(temporal_task_queue=QUEUE, ips_auth="none"))

    async def get_client() -> Any:
        return fake

    app.state.temporal.get = get_client
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        task_id = _task_id()
        answers = await asyncio.gather(*(client.get(f"{TASKS}/{task_id}") for _ in range(4)))
        assert all(r.status_code == 200 for r in answers)
        statuses = sorted(r.headers["cache-status"] for r in answers)
        assert statuses == ["ips-api; fwd=miss"] + ["ips-api; fwd=miss; collapsed"] * 3
        assert all(r.headers["age"] == "0" for r in answers)
        again = await client.get(f"{TASKS}/{task_id}")
        assert again.headers["cache-status"] == "ips-api; hit" and fake.queries == 1
        listed = await client.get(TASKS, params={"limit": 100})
        assert listed.status_code == 200 and listed.headers["cache-status"] == "ips-api; fwd=miss"
        assert (await client.get(TASKS, params={"limit": 100})).headers["cache-status"] == (
            "ips-api; hit"
        )
        fake.error = _rpc_error(RPCStatusCode.NOT_FOUND)
        missing = await client.get(f"{TASKS}/{_task_id()}")
        assert missing.status_code == 404 and "cache-status" not in missing.headers


def test_the_setting_is_checked() -> None:
    assert Settings().task_view_cache_seconds == 0.5
    with pytest.raises(ValueError, match="task_view_cache_seconds"):
        Settings(task_view_cache_seconds=-1)


async def test_expired_entries_are_dropped_as_new_ones_come() -> None:
    clock = Clock()
    reads: SharedReads[int, int] = SharedReads(0.5, 1000, clock=clock)

    async def load() -> int:
        return 0

    for key in range(100):
        await reads.read(key, load)
    clock.now += 1
    await reads.read(100, load)
    assert len(reads) == 1
