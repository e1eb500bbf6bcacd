"""Shared reads: identical concurrent GETs share one Temporal round trip, and its answer is
reused for a short time.

`ips watch` refreshes once a second and dashboards poll, so many readers ask for the same task
within the same second; a running task's view costs a describe and a `progress` query the
worker answers between its other work. Here:

- single-flight: the first reader of a key starts the lookup; readers that arrive while it is
  in flight wait for the same answer (errors included) instead of asking Temporal again;
- a short cache (`TASK_VIEW_CACHE_SECONDS`, 0 turns it off and keeps the single-flight) of the
  answers a caller says may be kept, bounded to the most recently used entries;
- `invalidate`/`clear`: a write this process makes drops what it read before, and a lookup
  still in flight then is neither joined by later readers nor stored.

An answer is stored only when the lookup succeeded: an error (404, Temporal unavailable) is
shared with the readers already waiting, never kept. The freshness is counted from the moment
the lookup *started* (its data is at most that old), which is what `Age` reports.

Not cachetools: its TTLCache would add a runtime dependency (and a stub package for the lint)
for what an OrderedDict does here in a few lines, and it has no single-flight for coroutines.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# The cache's name in `Cache-Status` (RFC 9211).
CACHE_NAME = "ips-api"


@dataclass(frozen=True)
class Shared(Generic[V]):
    """An answer and how it was obtained."""

    value: V
    age: float  # seconds since the lookup that produced it started
    hit: bool  # from the cache: no Temporal call at all
    collapsed: bool  # joined another request's lookup already in flight

    def headers(self) -> dict[str, str]:
        """`Age` (RFC 9111: whole seconds, rounded down) and `Cache-Status` (RFC 9211):
        `ips-api; hit`, `ips-api; fwd=miss; collapsed` or `ips-api; fwd=miss`."""
        if self.hit:
            status = f"{CACHE_NAME}; hit"
        else:
            status = f"{CACHE_NAME}; fwd=miss" + ("; collapsed" if self.collapsed else "")
        return {"Age": str(int(self.age)), "Cache-Status": status}


def _always(_: object) -> bool:
    return True


class SharedReads(Generic[K, V]):
    """Single-flight lookups per key, and their answers kept for `ttl` seconds (0: not kept),
    at most `max_entries` of them (the least recently used go first). One event loop."""

    def __init__(
        self, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl < 0 or max_entries < 1:
            raise ValueError("ttl must be >= 0 and max_entries >= 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._fresh: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._in_flight: dict[K, asyncio.Task[tuple[float, V]]] = {}

    def __len__(self) -> int:
        return len(self._fresh)

    async def read(
        self,
        key: K,
        load: Callable[[], Awaitable[V]],
        keep: Callable[[V], bool] = _always,
    ) -> Shared[V]:
        """The kept answer if fresh; else the lookup in flight for `key`; else a new one
        (`load()`), kept afterwards if it succeeded and `keep(answer)` says so."""
        cached = self._fresh.get(key)
        if cached is not None:
            age = self._clock() - cached[0]
            if age < self.ttl:
                self._fresh.move_to_end(key)
                return Shared(cached[1], age, hit=True, collapsed=False)
            del self._fresh[key]
        flight = self._in_flight.get(key)
        collapsed = flight is not None
        if flight is None:
            flight = asyncio.create_task(self._load(load))
            self._in_flight[key] = flight
            flight.add_done_callback(partial(self._landed, key, keep))
        # Shielded: a reader that goes away (client disconnect) does not cancel the others'.
        started, value = await asyncio.shield(flight)
        return Shared(value, self._clock() - started, hit=False, collapsed=collapsed)

    async def _load(self, load: Callable[[], Awaitable[V]]) -> tuple[float, V]:
        started = self._clock()
        return started, await load()

    def _landed(
        self, key: K, keep: Callable[[V], bool], flight: asyncio.Task[tuple[float, V]]
    ) -> None:
        failed = flight.cancelled() or flight.exception() is not None  # marks it retrieved
        if self._in_flight.get(key) is not flight:
            return  # invalidated meanwhile: its answer may predate the write
        del self._in_flight[key]
        if failed or self.ttl <= 0:
            return
        started, value = flight.result()
        if not keep(value):
            return
        self._fresh[key] = (started, value)
        self._fresh.move_to_end(key)
        self._purge()

    def _purge(self) -> None:
        """Over the bound, the least recently used go; expired ones at that end go too, so the
        entries are about those read within the last few TTLs, not the last `max_entries`."""
        horizon = self._clock() - self.ttl
        while self._fresh:
            oldest_started = next(iter(self._fresh.values()))[0]
            if len(self._fresh) <= self.max_entries and oldest_started >= horizon:
                return
            self._fresh.popitem(last=False)

    def invalidate(self, key: K) -> None:
        """Forget `key`: its kept answer, and the lookup in flight (which then is not kept)."""
        self._fresh.pop(key, None)
        self._in_flight.pop(key, None)

    def clear(self) -> None:
        self._fresh.clear()
        self._in_flight.clear()
