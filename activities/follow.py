"""Follow mode's unit: one long-lived activity that watches the nodes and prewarms each node
that becomes eligible, at once.

A unit (`follow_nodes`) is the batch control loop of activities/batch.py fed by a node watch
(`FollowSource`, a NodeSource) instead of a fixed list. The node watch and the unit's pod
watch stay open together: a node that becomes eligible gets its Job as soon as its event
arrives, with at most `in_flight` (batchSize) Jobs unfinished; its outcome and the node
itself (`joined`) reach the workflow by the batch's outcome signal. The unit stops taking
nodes at `until` or after `max_nodes`, finishes the Jobs in flight and returns the
resourceVersion the next unit resumes from. So the watch and pod-watch requests are paid once
per unit, not once per node, and no node waits for a batch to end.

The node watch follows client-go's reflector (staging/src/k8s.io/client-go/tools/cache/
reflector.go): each watch request resumes from the last resourceVersion seen
(`Reflector.watch`, with `allowWatchBookmarks` and a timeout; `watchHandler` advances the
resourceVersion with every event consumed), and a `410 Gone` (`isExpiredError`) relists
(`Reflector.list`, paginated) and watches from the list.

The test is level-based: a node is taken when it is eligible now (matches the selector,
Ready, not cordoned, no untolerated NoSchedule/NoExecute taint: activities/selection.py), not
already warm, and not in `covered` (the nodes the task has). A covered node seen deleted (or
missing from a relist) is returned in `gone`, so the workflow forgets it and a node that
rejoins under the same name is prewarmed again (by the next unit, if it rejoins within this
one: the unit stops consuming events at that point).

Heartbeat details carry, besides the batch's reported indexes, the resourceVersion of the
last event consumed and the nodes taken so far, in one snapshot: a retried attempt takes the
same nodes (adopting their Jobs) and resumes the watch from there. A node taken within a
heartbeat of the worker's death may be missing from the snapshot while its Job already ran
(and, the node being warm now, no watch or relist would offer it again): the retried attempt
finds it by its pod (the unit's pod listing) and adopts it (`adopt`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from activities.batch import BatchRun
from activities.errors import KubernetesError, KubernetesGone
from activities.kube import Kube
from activities.nodewatch import NodeWatch
from activities.selection import node_has_images, skip_reason
from common.engine import (
    ACTIVITY_FOLLOW_NODES,
    FollowNodesInput,
    FollowNodesResult,
    PrewarmNodesInput,
)
from common.models import ImagePullPolicy
from common.settings import Settings

log = logging.getLogger(__name__)

WATCH_SECONDS = 30  # one watch request; the unit goes on with the next one
RETRY_SECONDS = 1.0


def eligible(node: dict[str, Any], inp: FollowNodesInput) -> bool:
    """Eligible for a Job now: matches the selector, not skipped, not already warm."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in inp.node_selector.items()):
        return False
    if skip_reason(node, inp.spec, inp.resolved) is not None:
        return False
    warm_counts = inp.spec.image_pull_policy == ImagePullPolicy.IF_NOT_PRESENT
    return not (
        warm_counts
        and node_has_images(node, list(inp.spec.images), inp.resolved, pin_digests=inp.pin_digests)
    )


def _name(node: dict[str, Any]) -> str:
    return str((node.get("metadata") or {}).get("name") or "")


class FollowSource:
    """The unit's node watch, as a NodeSource (activities/nodesource.py)."""

    def __init__(self, kube: Kube, inp: FollowNodesInput) -> None:
        self.kube, self.inp = kube, inp
        self.covered = set(inp.covered)
        self.rv = inp.resource_version
        self.taken: list[str] = []
        self.gone: set[str] = set()  # covered or taken nodes seen deleted
        self.full = False  # stop consuming events: the next unit sees them
        self.relists = 0
        self.events = 0
        left = (inp.until - datetime.now(UTC)).total_seconds()
        self.deadline = time.monotonic() + max(0.0, left)
        self._add: Callable[[str], None] = lambda _node: None
        self._wake = asyncio.Event()
        self._lock = threading.Lock()  # the watch thread writes what the loop reads
        self._loop = asyncio.get_running_loop()

    # NodeSource ----------------------------------------------------------------------------

    def restore(self) -> list[str]:
        details = activity.info().heartbeat_details
        if len(details) > 2 and isinstance(details[2], dict):
            self.rv = str(details[2].get("rv") or "")
            self.taken = [str(n) for n in details[2].get("nodes") or []]
            self.full = len(self.taken) >= self.inp.max_nodes
        return list(self.taken)

    def adopt(self, node: str) -> bool:
        with self._lock:
            if node in self.covered or node in self.taken:
                return False
            self.taken.append(node)
            self.full = len(self.taken) >= self.inp.max_nodes
            return True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"rv": self.rv, "nodes": list(self.taken)}

    async def run(self, add: Callable[[str], None]) -> None:
        self._add = add
        while not self._done():
            if not self.rv:
                await self._relist()
                continue
            try:
                await self._watch()
            except KubernetesGone:
                log.info("follow: node watch expired (410 Gone): relisting")
                with self._lock:
                    self.rv = ""
            except KubernetesError as err:
                log.warning("follow: node watch failed (%s): retrying", err)
                await asyncio.sleep(RETRY_SECONDS)

    # Node tests (under the lock) -------------------------------------------------------------

    def _done(self) -> bool:
        return self.full or time.monotonic() >= self.deadline

    def _take(self, name: str) -> None:
        self.taken.append(name)
        self.full = len(self.taken) >= self.inp.max_nodes
        self._loop.call_soon_threadsafe(self._add, name)

    def _see(self, kind: str, node: dict[str, Any]) -> bool:
        """One event; False when it is left for the next unit (not consumed)."""
        name = _name(node)
        if not name:
            return True
        mine = name in self.covered or name in self.taken
        if kind == "DELETED":
            if mine:
                self.gone.add(name)
            return True
        if not eligible(node, self.inp):
            return True
        if name in self.gone:
            self.full = True  # it rejoined during this unit: the next unit takes it
            return False
        if not mine:
            self._take(name)
        return True

    # The watch -----------------------------------------------------------------------------

    async def _relist(self) -> None:
        """Reflector.list: every node, paginated; takes the eligible ones (up to the unit's
        room: with more, the next unit relists)."""
        kube = self.kube
        self.relists += 1
        while True:  # a failed page lists again from the first: one snapshot or none
            fresh: list[str] = []
            listed: set[str] = set()
            pages = kube.list_pages("nodes", kube.core.list_node)
            try:
                async for page in pages:
                    for node in page.get("items") or []:
                        name = _name(node)
                        listed.add(name)
                        if name and eligible(node, self.inp):
                            fresh.append(name)
            except KubernetesError as err:
                if self._done():
                    return
                log.warning("follow: node list failed (%s): retrying", err)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            rv = pages.resource_version
            break
        with self._lock:
            self.gone |= (self.covered | set(self.taken)) - listed
            new = [n for n in sorted(set(fresh)) if n not in self.covered and n not in self.taken]
            room = self.inp.max_nodes - len(self.taken)
            for name in new[:room]:
                self._take(name)
            self.rv = rv if len(new) <= room else ""
            self.full = self.full or len(new) > room

    def _handler(self, stop: threading.Event) -> Any:
        def on_event(event: dict[str, Any]) -> None:  # in the watch thread
            with self._lock:
                if stop.is_set() or self.full:
                    return  # not consumed: the next unit sees it again
                obj = event.get("object") or {}
                kind = str(event.get("type") or "")
                if kind != "BOOKMARK":
                    self.events += 1
                    if not self._see(kind, obj):
                        self._loop.call_soon_threadsafe(self._wake.set)
                        return
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if rv:
                    self.rv = str(rv)
                if self.full:
                    self._loop.call_soon_threadsafe(self._wake.set)

        return on_event

    async def _watch(self) -> None:
        """Watch requests from self.rv until the unit stops taking nodes."""
        while not self._done():
            self._wake.clear()
            remaining = self.deadline - time.monotonic()
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
                    {request, woken}, timeout=max(0.0, remaining), return_when="FIRST_COMPLETED"
                )
            finally:
                woken.cancel()
                with self._lock:
                    stop.set()  # from here on this request's thread consumes nothing
                if not request.done():
                    request.cancel()  # Kube.watch ends the request at once
                with contextlib.suppress(asyncio.CancelledError):
                    await request


class FollowActivities:
    """The follow-mode activity, bound to the worker's Kubernetes connection."""

    def __init__(self, kube: Kube, settings: Settings, nodes: NodeWatch) -> None:
        self.kube, self.settings, self.nodes = kube, settings, nodes

    @activity.defn(name=ACTIVITY_FOLLOW_NODES)
    async def follow_nodes(self, inp: FollowNodesInput) -> FollowNodesResult:
        source = FollowSource(self.kube, inp)
        batch = PrewarmNodesInput(
            task_id=inp.task_id,
            unit=inp.unit,
            total_units=inp.unit,
            nodes=[],
            spec=inp.pull,
            in_flight=inp.in_flight,
            pacing=inp.pacing,
        )
        run = BatchRun(self.kube, self.settings, batch, self.nodes, source=source)
        result = await run.run()
        log.info(
            "follow unit %d: %d nodes, %d events, %d relists",
            inp.unit,
            len(run.outcomes.nodes),
            source.events,
            source.relists,
            extra={"taskId": inp.task_id},
        )
        return FollowNodesResult(
            unit=inp.unit,
            joined=list(run.outcomes.nodes),
            outcomes=result.outcomes,
            resource_version=source.rv,
            gone=sorted(source.gone),
            pacing=result.pacing,
            relists=source.relists,
            events=source.events,
        )


__all__ = ["FollowActivities", "FollowSource", "eligible"]
