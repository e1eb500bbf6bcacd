"""Admission refusals: the API server refused a Job's pod, or the Job itself.

The job controller records a `FailedCreate` Event on the Job when the pod create is refused
("... is forbidden: no PriorityClass with name x was found", "admission webhook ... denied the
request", "violates PodSecurity", "exceeded quota"); the Job then waits, with no pod, until its
deadline. One Event watch per batch (field selector on kind and reason) sees each refusal as it
happens, so the node fails within seconds, `AdmissionDenied`, with the server's message.
Other FailedCreate messages (an API timeout) are transient: the controller retries them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from activities.classify import Verdict
from activities.errors import KubernetesError, KubernetesGone
from activities.kube import Kube
from common.engine import trim
from common.models import FailureReason

log = logging.getLogger(__name__)

WATCH_SECONDS = 30
FAILED_CREATE = "involvedObject.kind=Job,reason=FailedCreate"
_REFUSALS = ("forbidden", "denied the request", "is invalid")

Handler = Callable[[dict[str, Any]], Awaitable[None]]


def admission_refusal(message: str) -> bool:
    """True when a FailedCreate (or create error) message is an admission refusal."""
    low = message.lower()
    return any(word in low for word in _REFUSALS)


def denied(message: str) -> Verdict:
    return Verdict(
        done=True,
        reason=FailureReason.ADMISSION_DENIED,
        message=trim(f"admission refused the pull pod: {message}"),
    )


async def watch_stream(
    kube: Kube,
    handle: Handler,
    fn: Callable[..., Any],
    resource: str,
    rv: str,
    stop: threading.Event,
    **kwargs: Any,
) -> None:
    """One namespaced watch request; its events are handled in order on the event loop, and
    all of them before this returns (so the next request resumes from the newest version)."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def consume() -> None:
        while (event := await events.get()) is not None:
            await handle(event)

    def push(event: dict[str, Any]) -> None:  # in the watch thread
        loop.call_soon_threadsafe(events.put_nowait, event)

    consumer = asyncio.create_task(consume())
    try:
        await kube.watch(
            resource,
            fn,
            kube.namespace,
            resource_version=rv,
            timeout_seconds=WATCH_SECONDS,
            on_event=push,
            stop=stop,
            **kwargs,
        )
    finally:
        loop.call_soon(events.put_nowait, None)
        with contextlib.suppress(asyncio.CancelledError):
            await consumer


async def watch_refusals(
    kube: Kube, on_event: Handler, stop: threading.Event, extra: dict[str, str]
) -> None:
    """List, then watch, the namespace's FailedCreate Events on Jobs; each goes to `on_event`
    (which keeps the ones about its own Jobs)."""
    rv = ""

    async def handle(event: dict[str, Any]) -> None:
        nonlocal rv
        obj = event.get("object") or {}
        rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
        if event.get("type") in ("ADDED", "MODIFIED"):
            await on_event(obj)

    while not stop.is_set():
        try:
            if not rv:
                page = await kube.call(
                    "list",
                    "events",
                    kube.core.list_namespaced_event,
                    kube.namespace,
                    field_selector=FAILED_CREATE,
                )
                for ev in page.get("items") or []:
                    await on_event(ev)
                rv = (page.get("metadata") or {}).get("resourceVersion", "")
            await watch_stream(
                kube,
                handle,
                kube.core.list_namespaced_event,
                "events",
                rv,
                stop,
                field_selector=FAILED_CREATE,
            )
        except KubernetesGone:
            log.info("event watch expired (410 Gone): relisting", extra=extra)
            rv = ""
        except KubernetesError as err:
            log.warning("event watch failed (%s): retrying", err, extra=extra)
            await asyncio.sleep(1.0)
