"""A scripted Kubernetes for the batch activity's control loop (activities/batch.py).

It answers `Kube.call` and `Kube.watch` from dicts, counts every request by (verb, resource),
and lets a test push watch events and make calls block or fail. The loop runs unchanged in
Temporal's ActivityEnvironment, with wall-clock time but no server.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from activities.errors import KubernetesNotFound
from activities.jobspec import NODE_ANNOTATION, job_name
from activities.kube import Kube
from tests.waiting import async_wait_until

TASK = "task-20260101-000000-0000fake"
IMAGE = "registry.example.com/team/app:1"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_obj(name: str, *, ready: bool = True, since: datetime | None = None) -> dict[str, Any]:
    since = since or datetime.now(UTC) - timedelta(days=1)
    return {
        "metadata": {"name": name, "resourceVersion": "1"},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                    "message": "ok" if ready else "Kubelet stopped posting node status.",
                    "lastTransitionTime": iso(since),
                }
            ]
        },
    }


class _Limiter:
    async def acquire(self) -> None:
        return None


def _fn(name: str) -> Callable[..., Any]:
    def fn(*args: Any, **kwargs: Any) -> Any:  # never called: FakeKube dispatches by verb
        raise AssertionError(name)

    fn.__name__ = name
    return fn


class FakeKube:
    namespace = "ips"

    def __init__(self, nodes: list[str]) -> None:
        self.core = SimpleNamespace(
            **{
                n: _fn(n)
                for n in ("list_node", "read_node", "list_namespaced_pod", "list_namespaced_event")
            }
        )
        self.batch = SimpleNamespace(
            **{
                n: _fn(n)
                for n in ("create_namespaced_job", "read_namespaced_job", "delete_namespaced_job")
            }
        )
        self.limiter = _Limiter()
        self.nodes = {n: node_obj(n) for n in nodes}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: Counter[tuple[str, str]] = Counter()
        self.watches: dict[str, list[asyncio.Queue[dict[str, Any]]]] = {}
        self.create_errors: dict[str, list[Exception]] = {}  # node -> errors to raise first
        self.gate: asyncio.Event | None = None  # when set (cleared), every call blocks on it
        self.blocked = 0
        self.rv = 10

    # Kube's interface ---------------------------------------------------------------------

    list_pages = Kube.list_pages  # the real pagination, over the fake's `call`

    async def call(
        self, verb: str, resource: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        self.requests[(verb, resource)] += 1
        if self.gate is not None and not self.gate.is_set():
            self.blocked += 1
            await self.gate.wait()
        if (verb, resource) == ("create", "jobs"):
            body = args[1]
            node = body["metadata"]["annotations"][NODE_ANNOTATION]
            errors = self.create_errors.get(node) or []
            if errors:
                raise errors.pop(0)
            self.jobs[body["metadata"]["name"]] = body
            return body
        if (verb, resource) == ("list", "nodes"):
            return {
                "metadata": {"resourceVersion": str(self.rv)},
                "items": list(self.nodes.values()),
            }
        if (verb, resource) == ("get", "nodes"):
            if args[0] not in self.nodes:
                raise KubernetesNotFound("not found", code=404)
            return self.nodes[args[0]]
        if verb == "list":
            return {"metadata": {"resourceVersion": str(self.rv)}, "items": []}
        if (verb, resource) == ("get", "jobs"):
            if args[0] not in self.jobs:
                raise KubernetesNotFound("not found", code=404)
            return {"status": {}}
        return {}

    async def watch(
        self,
        resource: str,
        fn: Callable[..., Any],
        *args: Any,
        resource_version: str,
        timeout_seconds: int,
        on_event: Callable[[dict[str, Any]], None],
        stop: threading.Event,
        **kwargs: Any,
    ) -> None:
        self.requests[("watch", resource)] += 1
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.watches.setdefault(resource, []).append(queue)
        try:
            while not stop.is_set():
                try:
                    event = await asyncio.wait_for(queue.get(), 0.2)
                except TimeoutError:
                    continue
                on_event(event)
        finally:
            self.watches[resource].remove(queue)

    # Test controls --------------------------------------------------------------------------

    async def emit(self, resource: str, kind: str, obj: dict[str, Any]) -> None:
        """Deliver one watch event to every open watch of `resource` (waits for one)."""
        await self.until(lambda: self.watches.get(resource))
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        for q in self.watches[resource]:
            q.put_nowait({"type": kind, "object": obj})

    def pod(self, node: str, status: dict[str, Any], *, suffix: str = "abcde") -> dict[str, Any]:
        job = job_name(TASK, node)
        return {
            "metadata": {
                "name": f"{job}-{suffix}",
                "annotations": {NODE_ANNOTATION: node},
                "labels": {"job-name": job},
            },
            "spec": {"containers": [{"name": "pull-0", "image": IMAGE}]},
            "status": status,
        }

    @staticmethod
    def waiting(reason: str, message: str) -> dict[str, Any]:
        return {
            "phase": "Pending",
            "containerStatuses": [
                {"name": "pull-0", "image": IMAGE, "state": {"waiting": {"reason": reason,
                                                                        "message": message}}}
            ],
        }  # fmt: skip

    async def until(self, pred: Callable[[], Any], within: float = 20.0) -> Any:
        return await async_wait_until(
            pred, within, interval=0.02, message="condition not met in time"
        )
