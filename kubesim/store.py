"""The object store: one monotonic resourceVersion, a bounded watch history, change listeners.

Objects are plain dicts mutated only on the simulator's event loop. Every write re-encodes the
object once; lists, gets and every watcher reuse those bytes, which is what makes 5,000 nodes
and 5,000 Jobs cheap to serve.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubesim.selectors import fields_of

ObjKey = tuple[str, str]  # (namespace or "", name)


_ts_cache: tuple[int, str] = (0, "")


def now_iso() -> str:
    """RFC 3339 seconds, as metav1.Time; cached per second (it is on every write path)."""
    global _ts_cache
    sec = int(time.time())
    if _ts_cache[0] != sec:
        _ts_cache = (sec, datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _ts_cache[1]


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass(slots=True)
class Entry:
    kind: str
    obj: dict[str, Any]
    raw: bytes
    labels: dict[str, str]
    fields: dict[str, str]


@dataclass(slots=True)
class WatchEvent:
    rv: int
    kind: str
    type: str  # ADDED, MODIFIED, DELETED
    entry: Entry
    prev: Entry | None


@dataclass(eq=False)
class Watcher:
    kind: str
    queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)


Listener = Callable[[str, Entry, Entry | None], None]


class Conflict(Exception):
    pass


class Store:
    """All objects of all kinds, keyed by kind then (namespace, name)."""

    def __init__(self, history: int = 10000) -> None:
        self.rv = 1
        self.objects: dict[str, dict[ObjKey, Entry]] = {}
        # Per kind, like the apiserver's watch cache per resource: Event churn never pushes
        # Pod history out.
        self.history: dict[str, deque[WatchEvent]] = {}
        self.history_max = history
        self.compacted: dict[str, int] = {}  # per kind: rv <= this is gone, older watches get 410
        self.watchers: dict[str, set[Watcher]] = {}
        self.listeners: dict[str, list[Listener]] = {}

    # -- reads ------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str | None, name: str) -> Entry | None:
        return self.objects.get(kind, {}).get((namespace or "", name))

    def entries(self, kind: str, namespace: str | None = None) -> Iterator[Entry]:
        table = self.objects.get(kind, {})
        if namespace is None:
            yield from table.values()
        else:
            for (ns, _), e in table.items():
                if ns == namespace:
                    yield e

    def count(self, kind: str) -> int:
        return len(self.objects.get(kind, {}))

    # -- writes -----------------------------------------------------------------------------
    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _entry(self, kind: str, obj: dict[str, Any]) -> Entry:
        md = obj["metadata"]
        return Entry(kind, obj, encode(obj), dict(md.get("labels") or {}), fields_of(kind, obj))

    def create(self, kind: str, obj: dict[str, Any]) -> Entry:
        md = obj.setdefault("metadata", {})
        key = (md.get("namespace") or "", md["name"])
        table = self.objects.setdefault(kind, {})
        if key in table:
            raise Conflict(key)
        md.setdefault("uid", str(uuid.uuid4()))
        md.setdefault("creationTimestamp", now_iso())
        if "generation" not in md and kind not in ("Node", "Event", "Namespace", "Secret"):
            md["generation"] = 1
        rv = self._next_rv()
        md["resourceVersion"] = str(rv)
        entry = self._entry(kind, obj)
        table[key] = entry
        self._emit(WatchEvent(rv, kind, "ADDED", entry, None))
        return entry

    def update(self, kind: str, obj: dict[str, Any]) -> Entry:
        """Record a new version of `obj` (mutated in place or replaced)."""
        md = obj["metadata"]
        key = (md.get("namespace") or "", md["name"])
        table = self.objects.setdefault(kind, {})
        prev = table.get(key)
        if prev is None:
            raise KeyError(key)
        rv = self._next_rv()
        md["resourceVersion"] = str(rv)
        entry = self._entry(kind, obj)
        table[key] = entry
        self._emit(WatchEvent(rv, kind, "MODIFIED", entry, prev))
        return entry

    def delete(self, kind: str, namespace: str | None, name: str) -> Entry | None:
        table = self.objects.get(kind, {})
        prev = table.pop((namespace or "", name), None)
        if prev is None:
            return None
        rv = self._next_rv()
        obj = prev.obj
        obj["metadata"]["resourceVersion"] = str(rv)
        entry = self._entry(kind, obj)
        self._emit(WatchEvent(rv, kind, "DELETED", entry, prev))
        return entry

    def _emit(self, ev: WatchEvent) -> None:
        hist = self.history.setdefault(ev.kind, deque())
        hist.append(ev)
        if len(hist) > self.history_max:
            self.compacted[ev.kind] = hist.popleft().rv
        for w in self.watchers.get(ev.kind, ()):
            w.queue.put_nowait(ev)
        for fn in self.listeners.get(ev.kind, ()):
            fn(ev.type, ev.entry, ev.prev)

    # -- watch ------------------------------------------------------------------------------
    def subscribe(self, kind: str) -> Watcher:
        w = Watcher(kind)
        self.watchers.setdefault(kind, set()).add(w)
        return w

    def unsubscribe(self, w: Watcher) -> None:
        self.watchers.get(w.kind, set()).discard(w)

    def events_since(self, kind: str, rv: int) -> list[WatchEvent]:
        """Retained events of `kind` after `rv`; the caller checks `compacted_rv` first."""
        out: list[WatchEvent] = []
        for ev in reversed(self.history.get(kind, ())):
            if ev.rv <= rv:
                break
            out.append(ev)
        out.reverse()
        return out

    def compact(self) -> None:
        """Forget the whole history, as etcd compaction does: every old resourceVersion is gone."""
        self.history.clear()
        self.compacted = dict.fromkeys(self.objects, self.rv)
        self.compacted_default = self.rv

    compacted_default = 0

    def compacted_rv(self, kind: str) -> int:
        """Watches of `kind` from a resourceVersion below this get 410 Gone."""
        return self.compacted.get(kind, self.compacted_default)

    def listen(self, kind: str, fn: Listener) -> None:
        self.listeners.setdefault(kind, []).append(fn)

    def close_watchers(self) -> None:
        for ws in self.watchers.values():
            for w in ws:
                w.queue.put_nowait(None)
