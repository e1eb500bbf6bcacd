"""Follow mode's one node watch: the nodes that become eligible after the task's first sweep.

One call of `watch_nodes` is one *round*: it watches every node from the workflow's
resourceVersion and returns, as soon as up to `max_nodes` have gathered (for
`gather_seconds` after the first one) or `max_seconds` pass, the nodes that are now eligible
and not yet covered by the task, with the resourceVersion the next round resumes from. The
workflow prewarms them with the ordinary batch activity, records the resourceVersion in its
state, and calls the next round. So the workflow, not the worker, holds the watch's position:
a worker or Temporal restart resumes from it, and nothing that happened meanwhile is missed.

It follows client-go's reflector (staging/src/k8s.io/client-go/tools/cache/reflector.go):
- `Reflector.watch`: each watch request resumes from the last resourceVersion seen, with
  `allowWatchBookmarks` (a bookmark only moves the resourceVersion) and a timeout, and
  `watchHandler` advances the resourceVersion with every event it consumed;
- `Reflector.watch` / `isExpiredError`: a `410 Gone` ends the watch, and `ListAndWatch` starts
  again with `Reflector.list`: a full (paginated) list, whose resourceVersion the next watch
  starts from.

The test is level-based, not edge-based: a node is returned when it is eligible now (matches
the selector, Ready, not cordoned, no untolerated NoSchedule/NoExecute taint: the same rules
as the sweep, `activities/selection.py`), is not already warm, and is not in `covered`. So it
needs no memory of a node's earlier state: after a relist, every eligible node not covered is
found, including the ones skipped at the start. A node that joins, turns Ready, is uncordoned
or loses a taint is seen through the MODIFIED or ADDED event that made it eligible.

A covered node seen deleted (or missing from a relist) is returned in `gone`: the workflow
forgets it, so `covered` holds only nodes that exist, and a node that rejoins under the same
name is prewarmed again.

A round stops consuming events once it holds `max_nodes` nodes and returns the resourceVersion
of the last event it consumed, so the next round sees every later event. After a relist that
finds more than `max_nodes` nodes, it returns an empty resourceVersion: the next round relists,
with the returned nodes now covered. Heartbeat details carry the resourceVersion up to which
nothing is held back; a retried round resumes from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

from temporalio import activity

from activities.errors import KubernetesError, KubernetesGone
from activities.kube import Kube
from activities.selection import node_has_images, skip_reason
from common.engine import ACTIVITY_WATCH_NODES, WatchNodesInput, WatchNodesResult
from common.models import ImagePullPolicy
from common.settings import Settings

log = logging.getLogger(__name__)

WATCH_SECONDS = 30  # one watch request; the round goes on with the next one
LIST_PAGE = 500
RETRY_SECONDS = 1.0
HEARTBEAT_SECONDS = 1.0


def eligible(node: dict[str, Any], watch: WatchNodesInput) -> bool:
    """Eligible for a Job now: matches the selector, not skipped, not already warm."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in watch.node_selector.items()):
        return False
    if skip_reason(node, watch.spec, watch.resolved) is not None:
        return False
    warm_counts = watch.spec.image_pull_policy == ImagePullPolicy.IF_NOT_PRESENT
    return not (
        warm_counts
        and node_has_images(
            node, list(watch.spec.images), watch.resolved, pin_digests=watch.pin_digests
        )
    )


class FollowRound:
    """One round of `watch_nodes` (see the module docstring). `gather_scale` divides the
    gathering window (ENGINE_TIME_SCALE, for time-scaled tests and benchmarks only)."""

    def __init__(
        self,
        kube: Kube,
        watch: WatchNodesInput,
        resume_rv: str | None,
        gather_scale: float = 1.0,
    ) -> None:
        self.kube = kube
        self.watch = watch
        self.gather = watch.gather_seconds / gather_scale
        self.covered = set(watch.covered)
        self.rv = watch.resource_version if resume_rv is None else resume_rv
        self.safe_rv = self.rv  # nothing before it is held back (heartbeat details)
        self.found: dict[str, None] = {}  # insertion-ordered set
        self.gone: set[str] = set()  # covered nodes seen deleted
        self.full = False
        self.relists = 0
        self.events = 0
        self.first_found: float | None = None
        self._wake = asyncio.Event()
        self._lock = threading.Lock()  # the watch thread writes what the loop reads
        self._loop = asyncio.get_running_loop()

    # Node tests -----------------------------------------------------------------------

    def _see(self, kind: str, node: dict[str, Any]) -> None:
        name = (node.get("metadata") or {}).get("name") or ""
        if name in self.covered and name not in self.gone:
            if kind == "DELETED":
                self.gone.add(name)
            return
        if not name:
            return
        if kind != "DELETED" and eligible(node, self.watch):
            if name not in self.found:
                self.found[name] = None
                if self.first_found is None:
                    self.first_found = time.monotonic()
                self.full = len(self.found) >= self.watch.max_nodes
        else:
            self.found.pop(name, None)  # gone, or no longer eligible: not this round's business

    # The round ------------------------------------------------------------------------

    async def run(self) -> WatchNodesResult:
        deadline = time.monotonic() + self.watch.max_seconds
        beat = asyncio.create_task(self._heartbeat(), name="follow-heartbeat")
        try:
            while not self._done(deadline):
                if not self.rv:
                    if await self._relist(deadline):
                        break  # more than a batch, or no list by the deadline: relist next round
                    continue
                try:
                    await self._watch_until(deadline)
                except KubernetesGone:
                    log.info("follow: node watch expired (410 Gone): relisting")
                    self.rv = ""
                except KubernetesError as err:
                    log.warning("follow: node watch failed (%s): retrying", err)
                    await asyncio.sleep(RETRY_SECONDS)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        with self._lock:
            nodes, gone = sorted(self.found), sorted(self.gone)
        return WatchNodesResult(
            nodes=nodes,
            gone=gone,
            resource_version=self.rv,
            relists=self.relists,
            events=self.events,
        )

    def _done(self, deadline: float) -> bool:
        now = time.monotonic()
        if self.full or now >= deadline:
            return True
        return self.first_found is not None and now >= self.first_found + self.gather

    def _stop_at(self, deadline: float) -> float:
        """When the current wait must end: the round's deadline, or the end of gathering."""
        if self.first_found is not None:
            return min(deadline, self.first_found + self.gather)
        return deadline

    async def _relist(self, deadline: float) -> bool:
        """Reflector.list: every node, paginated. True when it found more than a batch, or
        could not list by the round's deadline: either way the next round relists."""
        kube, cont, rv = self.kube, None, ""
        self.relists += 1
        fresh: list[str] = []
        listed: set[str] = set()
        while True:
            kw: dict[str, Any] = {"limit": LIST_PAGE}
            if cont:
                kw["_continue"] = cont
            try:
                page = await kube.call("list", "nodes", kube.core.list_node, **kw)
            except KubernetesError as err:
                if time.monotonic() >= deadline:
                    log.warning("follow: node list failed (%s): the next round relists", err)
                    self.rv = ""
                    return True
                log.warning("follow: node list failed (%s): retrying", err)
                await asyncio.sleep(RETRY_SECONDS)
                kube, cont, fresh, listed = self.kube, None, [], set()
                continue
            for node in page.get("items") or []:
                name = (node.get("metadata") or {}).get("name") or ""
                listed.add(name)
                if name and name not in self.covered and eligible(node, self.watch):
                    fresh.append(name)
            meta = page.get("metadata") or {}
            rv = rv or str(meta.get("resourceVersion") or "")
            cont = meta.get("continue")
            if not cont:
                break
        self.gone |= self.covered - listed  # deleted while no watch saw it
        self.found = dict.fromkeys(sorted(set(fresh) | set(self.found)))
        if len(self.found) > self.watch.max_nodes:
            self.found = dict.fromkeys(list(self.found)[: self.watch.max_nodes])
            self.rv = ""
            return True
        self.rv = rv
        if self.found:
            self.first_found = self.first_found or time.monotonic()
            self.full = len(self.found) >= self.watch.max_nodes
        else:
            self.safe_rv = rv
        return False

    def _handler(self, stop: threading.Event) -> Any:
        """The event handler of one watch request (it runs in the watch thread)."""

        def on_event(event: dict[str, Any]) -> None:
            with self._lock:
                if stop.is_set() or self.full:
                    return  # not consumed: the next round sees it again
                obj = event.get("object") or {}
                meta = obj.get("metadata") or {}
                kind = str(event.get("type") or "")
                had = bool(self.found)
                if kind != "BOOKMARK":
                    self.events += 1
                    self._see(kind, obj)
                if meta.get("resourceVersion"):
                    self.rv = str(meta["resourceVersion"])
                    if not self.found:
                        self.safe_rv = self.rv
                if self.full or (self.found and not had):
                    self._loop.call_soon_threadsafe(self._wake.set)

        return on_event

    async def _watch_until(self, deadline: float) -> None:
        """Watch requests from self.rv until the round is done (full, gathered, deadline)."""
        while not self._done(deadline):
            self._wake.clear()
            remaining = self._stop_at(deadline) - time.monotonic()
            stop = threading.Event()
            request = asyncio.create_task(
                self.kube.watch(
                    "nodes",
                    self.kube.core.list_node,
                    resource_version=self.rv,
                    timeout_seconds=max(1, min(WATCH_SECONDS, int(remaining) + 1)),
                    on_event=self._handler(stop),
                    stop=stop,
                )
            )
            woken = asyncio.create_task(self._wake.wait())
            try:
                await asyncio.wait(
                    {request, woken},
                    timeout=max(0.0, remaining),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                woken.cancel()
                with self._lock:
                    stop.set()  # from here on this request's thread consumes nothing
                if not request.done():
                    request.cancel()  # Kube.watch ends the request at once
                with contextlib.suppress(asyncio.CancelledError):
                    await request
            # A first node while waiting moves the stop time: loop with the new one.

    async def _heartbeat(self) -> None:
        while True:
            activity.heartbeat(self.safe_rv)
            await asyncio.sleep(HEARTBEAT_SECONDS)


class FollowActivities:
    """The follow-mode activity, bound to the worker's Kubernetes connection."""

    def __init__(self, kube: Kube, settings: Settings | None = None) -> None:
        self.kube = kube
        self.time_scale = settings.engine_time_scale if settings is not None else 1.0

    @activity.defn(name=ACTIVITY_WATCH_NODES)
    async def watch_nodes(self, watch: WatchNodesInput) -> WatchNodesResult:
        details = activity.info().heartbeat_details
        resume = str(details[0]) if details and details[0] else None
        result = await FollowRound(self.kube, watch, resume, self.time_scale).run()
        log.info(
            "follow: %d newly eligible nodes, %d events, %d relists",
            len(result.nodes),
            result.events,
            result.relists,
            extra={"taskId": watch.task_id},
        )
        return result


__all__ = ["FollowActivities", "FollowRound", "eligible"]
