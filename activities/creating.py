"""Creating a batch's Jobs: at most `in_flight` unfinished at once (or fewer, as the AIMD window
says: activities/pacing_gate.py), each node on its own.

Requests are concurrent under the worker's rate limiter (activities/kube.py, which also retries
each request on 429, 5xx and connection errors). A node whose create still fails is retried on
its own, 2 s, 4 s, ... 30 s apart, for as long as the activity runs: one node's trouble never
aborts its batch (the activity's schedule-to-close bounds it all). A 409 AlreadyExists adopts
the Job an earlier attempt created; a webhook refusing the Job itself is that node's outcome
(AdmissionDenied); a missing namespace, or any other hopeless 4xx, fails the batch.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from temporalio.exceptions import ApplicationError

from activities.errors import (
    KubernetesClientError,
    KubernetesConflict,
    KubernetesError,
    KubernetesNotFound,
    to_application_error,
)
from activities.jobspec import build_job
from activities.kube import Kube
from activities.pacing_gate import PacingGate
from common.engine import PrewarmNodesInput
from common.models import TaskSpec
from common.settings import Settings

log = logging.getLogger(__name__)

CREATORS = 16  # concurrent creates of one batch
CREATE_RETRY_FIRST = 2.0  # back-off between create attempts of one node: 2 s, 4 s, ... 30 s
CREATE_RETRY_MAX = 30.0


def pull_spec(batch: PrewarmNodesInput) -> TaskSpec:
    """The task spec the Job builder reads, from the slim per-batch input (no validation)."""
    spec = batch.spec
    return TaskSpec.model_construct(
        images=list(spec.images),
        batch_size=1,
        node_selector={},
        node_names=None,
        image_pull_policy=spec.image_pull_policy,
        image_pull_secrets=list(spec.image_pull_secrets),
        tolerations=list(spec.tolerations),
        timeout_seconds=spec.timeout_seconds,
    )


class JobCreator:
    """One batch's Job creation; `release(node)` frees the node's slot when it has an outcome."""

    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        batch: PrewarmNodesInput,
        *,
        is_done: Callable[[str], bool],
        on_exists: Callable[[str], None],
        on_refused: Callable[[str, str], Awaitable[None]],
        extra: dict[str, str],
        gate: PacingGate | None = None,
    ) -> None:
        self.kube, self.settings, self.batch = kube, settings, batch
        self.spec = pull_spec(batch)
        self.is_done, self.on_exists, self.on_refused = is_done, on_exists, on_refused
        self.extra = extra
        self.gate = gate or PacingGate(batch.in_flight, None)
        self.created = self.adopted = 0
        self.queue = asyncio.Queue[str | None]()

    def feed(self, node: str) -> None:
        """One more node to create (follow mode feeds them while the unit runs)."""
        self.queue.put_nowait(node)

    def close(self) -> None:
        """No node comes after these: each creator ends once the queue is drained."""
        for _ in range(CREATORS):
            self.queue.put_nowait(None)

    def release(self, node: str) -> None:
        self.gate.release(node)

    async def run(self, nodes: list[str], *, more: bool = False) -> None:
        """Create the Jobs of `nodes`, and, with `more`, of every node fed until `close()`."""
        for node in nodes:
            self.feed(node)
        if not more:
            self.close()
        count = CREATORS if more else min(CREATORS, len(nodes))
        workers = [asyncio.create_task(self._creator(self.queue)) for _ in range(count)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()

    async def _creator(self, pending: asyncio.Queue[str | None]) -> None:
        while True:
            node = await pending.get()
            if node is None:
                return
            if self.is_done(node):
                continue
            await self.gate.acquire(node)
            if self.is_done(node):  # finished while we waited (an adopted Job)
                self.gate.release(node)
                continue
            await self._create_with_retries(node)

    async def _create_with_retries(self, node: str) -> None:
        attempt = 0
        while not self.is_done(node):
            try:
                await self._create(node)
                return
            except KubernetesError as err:
                if not err.retryable:
                    raise to_application_error(err, f"creating the Job for node {node}") from None
                attempt += 1
                wait = min(CREATE_RETRY_MAX, CREATE_RETRY_FIRST * 2.0 ** (attempt - 1))
                wait = self.settings.engine_seconds(wait) * (0.5 + random.random() / 2)
                log.warning(
                    "creating the Job for node %s failed (%s): retrying in %.0fs",
                    node,
                    err,
                    wait,
                    extra=self.extra,
                )
                await asyncio.sleep(wait)

    async def _create(self, node: str) -> None:
        kube, batch = self.kube, self.batch
        body = build_job(
            task_id=batch.task_id,
            unit=batch.unit,
            node=node,
            spec=self.spec,
            worker_image=self.settings.worker_image,
            ttl_seconds=self.settings.job_ttl_seconds,
            priority_class_name=self.settings.priority_class_name,
        )
        try:
            await kube.call(
                "create", "jobs", kube.batch.create_namespaced_job, kube.namespace, body
            )
            self.created += 1
        except KubernetesConflict as err:
            if not err.already_exists:
                raise
            self.adopted += 1  # an earlier attempt created it: adopt, never recreate
        except KubernetesNotFound as err:
            if (err.status.get("details") or {}).get("kind") == "namespaces":
                raise ApplicationError(
                    f"namespace {kube.namespace!r} (K8S_NAMESPACE) does not exist",
                    type="NamespaceNotFound",
                    non_retryable=True,
                ) from None
            raise
        except KubernetesClientError as err:
            if "admission webhook" not in err.message.lower():
                raise
            # A webhook refused the Job itself: this node's outcome, not the batch's.
            await self.on_refused(node, err.message)
            return
        self.on_exists(node)
