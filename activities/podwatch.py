"""The batch's one pod watch: a label-selected list of the unit's pods, then a watch that
resumes from the newest resourceVersion and relists on 410 Gone (activities/batch.py judges
each pod it hands over)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from activities.errors import KubernetesError, KubernetesGone
from activities.kube import Kube
from activities.refusals import watch_stream

log = logging.getLogger(__name__)

PodHandler = Callable[[dict[str, Any]], Awaitable[None]]


class PodWatch:
    """Hands each pod to `on_listed` (a list), `on_changed` (ADDED, MODIFIED) or `on_deleted`."""

    def __init__(
        self,
        kube: Kube,
        selector: str,
        stop: threading.Event,
        extra: dict[str, Any],
        *,
        on_listed: PodHandler,
        on_changed: PodHandler,
        on_deleted: PodHandler,
    ) -> None:
        self.kube, self.selector, self.stop, self.extra = kube, selector, stop, extra
        self.on_listed, self.on_changed, self.on_deleted = on_listed, on_changed, on_deleted
        self.rv = ""

    async def relist(self) -> None:
        kube = self.kube
        page = await kube.call(
            "list",
            "pods",
            kube.core.list_namespaced_pod,
            kube.namespace,
            label_selector=self.selector,
        )
        self.rv = (page.get("metadata") or {}).get("resourceVersion", "")
        for pod in page.get("items") or []:
            await self.on_listed(pod)

    async def run(self) -> None:
        """One label-selected watch for the whole batch; resumes, and relists on 410 Gone."""

        async def handle(event: dict[str, Any]) -> None:
            obj = event.get("object") or {}
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self.rv = rv
            kind = event.get("type")
            if kind in ("ADDED", "MODIFIED"):
                await self.on_changed(obj)
            elif kind == "DELETED":
                await self.on_deleted(obj)

        while not self.stop.is_set():
            try:
                await watch_stream(
                    self.kube,
                    handle,
                    self.kube.core.list_namespaced_pod,
                    "pods",
                    self.rv,
                    self.stop,
                    label_selector=self.selector,
                )
            except KubernetesGone:
                log.info("watch expired (410 Gone): relisting", extra=self.extra)
                await self.relist()
            except KubernetesError as err:
                log.warning("watch failed (%s): retrying", err, extra=self.extra)
                await asyncio.sleep(1.0)
