"""One watch over the cluster's nodes, shared by every batch the worker runs.

A batch needs to know whether the node of a stuck pod was deleted or went NotReady, and since
when. Asking the API server for each pending pod's node every few seconds costs one request per
node per check, and starves the rate limiter on big batches. Instead the worker keeps one
list + watch of all nodes while any batch runs (and a minute after, so consecutive batches
share it), and keeps only what the checks read: the `Ready` condition and its
`lastTransitionTime`. That is a few dozen bytes per node, never the whole Node object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from activities.errors import KubernetesError, KubernetesGone
from activities.kube import Kube

log = logging.getLogger(__name__)

WATCH_SECONDS = 30
LINGER_SECONDS = 60.0  # keep watching this long after the last batch ends (the next one starts)
RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class NodeReady:
    """A node's `Ready` condition: whether it is True, since when, and why not."""

    ready: bool
    since: datetime | None
    message: str


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def ready_of(node: dict[str, Any]) -> NodeReady:
    """The Ready condition of a Node object (wire JSON); no condition counts as not ready."""
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return NodeReady(
                ready=cond.get("status") == "True",
                since=parse_time(cond.get("lastTransitionTime")),
                message=cond.get("message") or cond.get("reason") or "",
            )
    return NodeReady(ready=False, since=None, message="no Ready condition reported")


class NodeWatch:
    """The Ready state of every node, kept current by one watch while anyone `use`s it."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.nodes: dict[str, NodeReady] = {}
        self.synced = False
        self.lists = 0  # full listings done (for tests and logs)
        self._users = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._linger: asyncio.TimerHandle | None = None

    # Lifetime -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[NodeWatch]:
        self._users += 1
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._task is None or self._task.done():
            self._stop = threading.Event()
            self.synced = False
            self._task = asyncio.create_task(self._run(self._stop), name="node-watch")
        try:
            yield self
        finally:
            self._users -= 1
            if self._users == 0:
                loop = asyncio.get_running_loop()
                self._linger = loop.call_later(LINGER_SECONDS, self.close)

    def close(self) -> None:
        self._linger = None
        if self._users == 0 and self._task is not None:
            self._stop.set()
            self._task.cancel()
            self._task = None
            self.synced = False
            self.nodes = {}

    # Reads (no request) -------------------------------------------------------------------

    def gone(self, name: str) -> bool:
        """True when the node is known not to exist (the cache is synced and lacks it)."""
        return self.synced and name not in self.nodes

    def get(self, name: str) -> NodeReady | None:
        return self.nodes.get(name)

    # The list + watch loop ------------------------------------------------------------------

    async def _run(self, stop: threading.Event) -> None:
        rv = ""
        while not stop.is_set():
            try:
                if not rv:
                    rv = await self._list()
                rv = await self._watch(rv, stop)
            except asyncio.CancelledError:
                raise
            except KubernetesGone:
                log.info("node watch expired (410 Gone): relisting")
                rv = ""
            except KubernetesError as err:
                log.warning("node watch failed (%s): retrying", err)
                await asyncio.sleep(RETRY_SECONDS)
            except Exception:  # never let the shared cache die; the batches fall back to GETs
                log.exception("node watch crashed: retrying")
                rv = ""
                await asyncio.sleep(RETRY_SECONDS)

    async def _list(self) -> str:
        kube = self.kube
        fresh: dict[str, NodeReady] = {}
        pages = kube.list_pages("nodes", kube.core.list_node)
        async for page in pages:
            for node in page.get("items") or []:
                fresh[(node.get("metadata") or {}).get("name", "")] = ready_of(node)
        self.nodes = fresh
        self.synced = True
        self.lists += 1
        return pages.resource_version  # the first page's: a paginated list is one snapshot

    async def _watch(self, rv: str, stop: threading.Event) -> str:
        last = [rv]

        def on_event(event: dict[str, Any]) -> None:  # in the watch thread: plain dict writes
            obj = event.get("object") or {}
            meta = obj.get("metadata") or {}
            if meta.get("resourceVersion"):
                last[0] = meta["resourceVersion"]
            kind, name = event.get("type"), meta.get("name")
            if not name or kind == "BOOKMARK":
                return
            if kind == "DELETED":
                self.nodes.pop(name, None)
            else:
                self.nodes[name] = ready_of(obj)

        await self.kube.watch(
            "nodes",
            self.kube.core.list_node,
            resource_version=rv,
            timeout_seconds=WATCH_SECONDS,
            on_event=on_event,
            stop=stop,
        )
        return last[0]
