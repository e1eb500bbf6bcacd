"""The engine's activities: list nodes, prewarm one batch (or rolling window), clean up.

Only this package talks to Kubernetes. Every activity heartbeats; the batch activity streams
node outcomes to the workflow by signal (at most one a second) so progress moves live, and it
is idempotent on retry: Jobs have deterministic names and are adopted, and nodes already
reported (kept in the heartbeat details) are never pulled again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.classify import (
    RUNNING,
    Verdict,
    classify_pod,
    job_verdict,
    timeout_verdict,
)
from activities.errors import (
    KubernetesConflict,
    KubernetesError,
    KubernetesGone,
    KubernetesNotFound,
    to_application_error,
)
from activities.jobspec import (
    NODE_ANNOTATION,
    build_job,
    job_name,
    task_selector,
    unit_selector,
)
from activities.kube import Kube
from activities.selection import select_nodes
from common.models import FailedNodeDetail, FailureReason
from common.observability import NODE_FAILURES, NODE_PREWARM_SECONDS, NODES_PROCESSED
from common.settings import Settings
from workflows.types import (
    ACTIVITY_CLEANUP,
    ACTIVITY_LIST_NODES,
    ACTIVITY_PREWARM_NODES,
    SIGNAL_NODE_OUTCOMES,
    CleanupInput,
    CleanupResult,
    ListNodesInput,
    NodeOutcome,
    NodeOutcomes,
    NodeSelection,
    PrewarmNodesInput,
    PrewarmNodesResult,
    trim,
)

log = logging.getLogger(__name__)

LIST_PAGE = 500
WATCH_SECONDS = 30
SIGNAL_INTERVAL = 1.0  # outcomes reach the workflow at most this often (and within ~1 s)
TICK = 0.5
NODE_CHECK_INTERVAL = 5.0  # seconds between GETs of one node that looks stuck
EVENT_CHECK_INTERVAL = 5.0
DEADLINE_SLACK = 30.0  # beyond activeDeadlineSeconds before we stop waiting for the API
GENERIC_BACKOFF = "Back-off pulling image"


class PrewarmActivities:
    """Activities bound to one Kubernetes connection and the worker's settings."""

    def __init__(self, kube: Kube, settings: Settings) -> None:
        self.kube = kube
        self.settings = settings

    @property
    def all(self) -> list[Any]:
        return [self.list_nodes, self.prewarm_nodes, self.cleanup_task]

    # --- list_nodes ----------------------------------------------------------------------

    @activity.defn(name=ACTIVITY_LIST_NODES)
    async def list_nodes(self, inp: ListNodesInput) -> NodeSelection:
        """One paginated node listing.

        No namespace check here: the least-privilege Role has no `get namespaces`. A missing
        K8S_NAMESPACE shows on the first Job create (404 for kind namespaces), and fails the
        task there with the same clear message.
        """
        extra = {"taskId": inp.task_id}
        kube = self.kube
        selector = ",".join(f"{k}={v}" for k, v in sorted(inp.spec.node_selector.items()))
        items: list[dict[str, Any]] = []
        cont: str | None = None
        try:
            while True:
                kw: dict[str, Any] = {"limit": LIST_PAGE}
                if selector:
                    kw["label_selector"] = selector
                if cont:
                    kw["_continue"] = cont
                page = await kube.call("list", "nodes", kube.core.list_node, **kw)
                items += page.get("items") or []
                activity.heartbeat(len(items))
                cont = (page.get("metadata") or {}).get("continue")
                if not cont:
                    break
        except KubernetesError as err:
            raise to_application_error(err, "listing nodes") from None
        sel = select_nodes(items, inp.spec)
        NODES_PROCESSED.labels("skipped").inc(len(sel.skipped))
        NODES_PROCESSED.labels("warm").inc(sel.warm)
        log.info(
            "listed %d nodes: %d to pull, %d warm, %d skipped",
            len(items),
            len(sel.targets),
            sel.warm,
            len(sel.skipped),
            extra=extra,
        )
        return sel

    # --- prewarm_nodes -------------------------------------------------------------------

    @activity.defn(name=ACTIVITY_PREWARM_NODES)
    async def prewarm_nodes(self, inp: PrewarmNodesInput) -> PrewarmNodesResult:
        return await _UnitRun(self.kube, self.settings, inp).run()

    # --- cleanup_task --------------------------------------------------------------------

    @activity.defn(name=ACTIVITY_CLEANUP)
    async def cleanup_task(self, inp: CleanupInput) -> CleanupResult:
        """Delete every Job of the task with background propagation; the garbage collector
        removes their pods. Pods are only counted, never deleted: the least-privilege Role
        grants no pod `delete` (deploy/), and background propagation already covers them.
        """
        kube, ns, selector = self.kube, self.kube.namespace, task_selector(inp.task_id)
        result = CleanupResult()
        try:
            jobs = await kube.call(
                "list", "jobs", kube.batch.list_namespaced_job, ns, label_selector=selector
            )
            result.jobs_deleted = len(jobs.get("items") or [])
            if result.jobs_deleted:
                await kube.call(
                    "deletecollection",
                    "jobs",
                    kube.batch.delete_collection_namespaced_job,
                    ns,
                    label_selector=selector,
                    propagation_policy="Background",
                )
            activity.heartbeat("jobs")
            pods = await kube.call(
                "list", "pods", kube.core.list_namespaced_pod, ns, label_selector=selector
            )
            result.pods_awaiting_gc = len(pods.get("items") or [])
        except KubernetesError as err:
            raise to_application_error(err, "cleaning up the task's Jobs") from None
        log.info(
            "clean-up deleted %d jobs; %d pods left to the garbage collector",
            result.jobs_deleted,
            result.pods_awaiting_gc,
            extra={"taskId": inp.task_id},
        )
        return result


class _UnitRun:
    """One attempt of one batch activity: create or adopt Jobs, watch pods, report outcomes."""

    def __init__(self, kube: Kube, settings: Settings, inp: PrewarmNodesInput) -> None:
        self.kube, self.settings, self.inp = kube, settings, inp
        self.extra = {"taskId": inp.task_id}
        self.index = {n: i for i, n in enumerate(inp.nodes)}
        self.by_job = {job_name(inp.task_id, n): n for n in inp.nodes}
        self.outcomes: dict[str, NodeOutcome] = {}
        self.reported: set[str] = set()
        self.unsent: list[NodeOutcome] = []
        self.started: dict[str, float] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.last_error: dict[str, Verdict] = {}
        self.checked_node: dict[str, float] = {}
        self.checked_events: dict[str, float] = {}
        self.checked_job: dict[str, float] = {}
        self.slots = asyncio.Semaphore(inp.in_flight)
        self.holding: set[str] = set()
        self.all_done = asyncio.Event()
        self.wakeup = asyncio.Event()
        self.stop = threading.Event()
        self.rv = ""
        self.created = self.adopted = 0

    # The main loop ---------------------------------------------------------------------

    async def run(self) -> PrewarmNodesResult:
        self.t0 = time.monotonic()
        self._restore()
        log.info(
            "batch %d/%d: %d nodes (%d already reported), %d in flight",
            self.inp.unit,
            self.inp.total_units,
            len(self.inp.nodes),
            len(self.reported),
            self.inp.in_flight,
            extra=self.extra,
        )
        if len(self.outcomes) + len(self.reported) < len(self.inp.nodes):
            await self._relist()
        tasks = [
            asyncio.create_task(self._watch_loop(), name="watch"),
            asyncio.create_task(self._create_loop(), name="create"),
            asyncio.create_task(self._tick_loop(), name="tick"),
        ]
        done_wait = asyncio.create_task(self.all_done.wait())
        try:
            self._maybe_done()
            waiting: set[asyncio.Task[Any]] = {done_wait, *tasks}
            # The create loop ends normally once every Job exists: keep watching until every
            # node has an outcome; any loop that dies raises (the activity is retried).
            while not done_wait.done():
                finished, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for t in finished:
                    if t is not done_wait:
                        t.result()
        finally:
            self.stop.set()
            for t in [done_wait, *tasks]:
                t.cancel()
            await asyncio.gather(done_wait, *tasks, return_exceptions=True)
        log.info(
            "batch %d/%d done in %.1fs: %d outcomes, %d Jobs created, %d adopted",
            self.inp.unit,
            self.inp.total_units,
            time.monotonic() - self.t0,
            len(self.reported | self.outcomes.keys()),
            self.created,
            self.adopted,
            extra=self.extra,
        )
        # Outcomes not signalled yet travel in the result (one history event, not a signal).
        return PrewarmNodesResult(
            unit=self.inp.unit,
            outcomes=[o for n, o in self.outcomes.items() if n not in self.reported],
            jobs_created=self.created,
            jobs_adopted=self.adopted,
        )

    def _restore(self) -> None:
        """Nodes reported by an earlier attempt (heartbeat details) are done: never re-pulled."""
        details = activity.info().heartbeat_details
        if not details:
            return
        indexes = details[0] if isinstance(details[0], list) else []
        for i in indexes:
            if isinstance(i, int) and 0 <= i < len(self.inp.nodes):
                self.reported.add(self.inp.nodes[i])

    def _pending(self) -> list[str]:
        return [n for n in self.inp.nodes if n not in self.reported and n not in self.outcomes]

    def _maybe_done(self) -> None:
        if not self._pending():
            self.all_done.set()

    # Creating Jobs ------------------------------------------------------------------------

    async def _create_loop(self) -> None:
        """Start Jobs, at most `in_flight` unfinished at once, concurrently under the rate limit."""
        pending = asyncio.Queue[str]()
        for node in self._pending():
            pending.put_nowait(node)
        workers = [
            asyncio.create_task(self._creator(pending)) for _ in range(min(16, pending.qsize()))
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
        log.debug(
            "batch %d: Jobs created after %.2fs",
            self.inp.unit,
            time.monotonic() - self.t0,
            extra=self.extra,
        )

    async def _creator(self, pending: asyncio.Queue[str]) -> None:
        while True:
            try:
                node = pending.get_nowait()
            except asyncio.QueueEmpty:
                return
            if node in self.outcomes:
                continue
            await self.slots.acquire()
            if node in self.outcomes:  # finished while we waited (an adopted Job)
                self.slots.release()
                continue
            self.holding.add(node)
            await self._create(node)

    async def _create(self, node: str) -> None:
        kube, inp = self.kube, self.inp
        body = build_job(
            task_id=inp.task_id,
            unit=inp.unit,
            node=node,
            spec=inp.spec,
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
                raise to_application_error(err, f"creating the Job for node {node}") from None
            self.adopted += 1  # an earlier attempt created it: adopt, never recreate
        except KubernetesNotFound as err:
            if (err.status.get("details") or {}).get("kind") == "namespaces":
                raise ApplicationError(
                    f"namespace {kube.namespace!r} (K8S_NAMESPACE) does not exist",
                    type="NamespaceNotFound",
                    non_retryable=True,
                ) from None
            raise to_application_error(err, f"creating the Job for node {node}") from None
        except KubernetesError as err:
            raise to_application_error(err, f"creating the Job for node {node}") from None
        # Only a Job known to exist is timed and checked (a GET before it exists would 404).
        self.started.setdefault(node, time.monotonic())

    # Watching pods ------------------------------------------------------------------------

    async def _relist(self) -> None:
        kube = self.kube
        page = await kube.call(
            "list",
            "pods",
            kube.core.list_namespaced_pod,
            kube.namespace,
            label_selector=unit_selector(self.inp.task_id, self.inp.unit),
        )
        self.rv = (page.get("metadata") or {}).get("resourceVersion", "")
        for pod in page.get("items") or []:
            node = self._node_of(pod)
            if node is not None and node not in self.started:
                self.started[node] = time.monotonic()  # adopted: it was created before
                self.adopted += 1
            await self._on_pod(pod)

    async def _watch_loop(self) -> None:
        """One label-selected watch for the whole batch; resumes, and relists on 410 Gone."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def push(event: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        async def consume() -> None:
            while True:
                event = await events.get()
                try:
                    await self._on_event(event)
                finally:
                    events.task_done()

        consumer = asyncio.create_task(consume())
        try:
            while not self.stop.is_set():
                await self.kube.limiter.acquire()
                try:
                    await loop.run_in_executor(
                        self.kube.watch_executor,
                        self.kube.watch_pods_blocking,
                        unit_selector(self.inp.task_id, self.inp.unit),
                        self.rv,
                        WATCH_SECONDS,
                        push,
                        self.stop,
                    )
                except KubernetesGone:
                    log.info("watch expired (410 Gone): relisting", extra=self.extra)
                    await self._drain(events)
                    await self._relist()
                except KubernetesError as err:
                    log.warning("watch failed (%s): retrying", err, extra=self.extra)
                    await asyncio.sleep(1.0)
                await self._drain(events)
        finally:
            consumer.cancel()

    @staticmethod
    async def _drain(events: asyncio.Queue[dict[str, Any]]) -> None:
        """Let the consumer catch up before the next watch starts from self.rv."""
        await events.join()

    async def _on_event(self, event: dict[str, Any]) -> None:
        obj = event.get("object") or {}
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            self.rv = rv
        kind = event.get("type")
        if kind in ("ADDED", "MODIFIED"):
            await self._on_pod(obj)
        elif kind == "DELETED":
            await self._on_pod_deleted(obj)

    def _node_of(self, pod: dict[str, Any]) -> str | None:
        meta = pod.get("metadata") or {}
        node = (meta.get("annotations") or {}).get(NODE_ANNOTATION)
        if node in self.index:
            return node
        owner = (meta.get("labels") or {}).get("job-name")
        return self.by_job.get(owner or "")

    async def _on_pod(self, pod: dict[str, Any]) -> None:
        node = self._node_of(pod)
        if node is None or node in self.outcomes or node in self.reported:
            return
        self.pods[node] = pod
        await self._evaluate(node, pod)

    async def _evaluate(self, node: str, pod: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        grace = float(self.settings.unschedulable_grace_seconds)
        verdict = classify_pod(pod, now=now, unschedulable_grace=grace)
        if (
            not verdict.done
            and verdict.reason is not None
            and verdict.reason != FailureReason.UNSCHEDULABLE
            and GENERIC_BACKOFF in verdict.message
        ):
            events = await self._pod_events(node, pod)
            if events:
                verdict = classify_pod(pod, now=now, unschedulable_grace=grace, events=events)
        if not verdict.done and verdict.reason is not None:
            if verdict.reason != FailureReason.UNSCHEDULABLE:
                self.last_error[node] = verdict
        if verdict.done and verdict.reason == FailureReason.UNSCHEDULABLE:
            verdict = await self._node_verdict(node, force=True) or verdict
        if verdict.done:
            await self._finish(node, verdict, delete_job=not verdict.ok)
        elif verdict.reason == FailureReason.UNSCHEDULABLE:
            node_v = await self._node_verdict(node)
            if node_v is not None:
                await self._finish(node, node_v, delete_job=True)

    async def _pod_events(self, node: str, pod: dict[str, Any]) -> list[dict[str, Any]]:
        now = time.monotonic()
        if now - self.checked_events.get(node, 0.0) < EVENT_CHECK_INTERVAL:
            return []
        self.checked_events[node] = now
        name = (pod.get("metadata") or {}).get("name", "")
        kube = self.kube
        try:
            page = await kube.call(
                "list",
                "events",
                kube.core.list_namespaced_event,
                kube.namespace,
                field_selector=f"involvedObject.name={name}",
            )
        except KubernetesError:
            return []
        return [
            e
            for e in page.get("items") or []
            if (e.get("involvedObject") or {}).get("name") == name
        ]

    async def _node_verdict(self, node: str, *, force: bool = False) -> Verdict | None:
        """NodeGone if the node was deleted, NodeNotReady if it went NotReady; else None."""
        now = time.monotonic()
        if not force and now - self.checked_node.get(node, 0.0) < NODE_CHECK_INTERVAL:
            return None
        self.checked_node[node] = now
        kube = self.kube
        try:
            obj = await kube.call("get", "nodes", kube.core.read_node, node)
        except KubernetesNotFound:
            return Verdict(
                done=True, reason=FailureReason.NODE_GONE, message="node was deleted mid-task"
            )
        except KubernetesError:
            return None
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Ready" and cond.get("status") != "True":
                started = self.started.get(node, now)
                if force or now - started >= self.settings.unschedulable_grace_seconds:
                    return Verdict(
                        done=True,
                        reason=FailureReason.NODE_NOT_READY,
                        message=trim(
                            f"node went NotReady: {cond.get('message') or cond.get('reason')}"
                        ),
                    )
        return None

    async def _on_pod_deleted(self, pod: dict[str, Any]) -> None:
        node = self._node_of(pod)
        if node is None or node in self.outcomes or node in self.reported:
            return
        self.pods.pop(node, None)
        verdict = classify_pod(pod, now=datetime.now(UTC), unschedulable_grace=float("inf"))
        if verdict.done:
            await self._finish(node, verdict, delete_job=False)
            return
        await self._check_job(node, deadline_passed=False)

    async def _check_job(self, node: str, *, deadline_passed: bool) -> None:
        """The outcome from the Job (its pod is gone, or the deadline passed), or from the node
        itself when it was deleted or went NotReady, which explains a stuck pod better."""
        kube = self.kube
        self.checked_job[node] = time.monotonic()
        try:
            job = await kube.call(
                "get",
                "jobs",
                kube.batch.read_namespaced_job,
                job_name(self.inp.task_id, node),
                kube.namespace,
            )
        except KubernetesNotFound:
            gone = await self._node_verdict(node, force=True)
            verdict = gone or Verdict(
                done=True,
                reason=FailureReason.CONTAINER_FAILED,
                message="the pull Job was deleted before it finished",
            )
            await self._finish(node, verdict, delete_job=False)
            return
        except KubernetesError:
            return
        verdict = job_verdict(job, self.last_error.get(node))
        if verdict.ok:
            await self._finish(node, verdict, delete_job=False)
            return
        if verdict.done or deadline_passed or node not in self.pods:
            verdict = (await self._node_verdict(node, force=True)) or verdict
        if not verdict.done and deadline_passed:
            verdict = timeout_verdict(self.last_error.get(node))
        if verdict.done:
            await self._finish(node, verdict, delete_job=True)

    async def _tick_loop(self) -> None:
        """Time-based checks the watch cannot trigger, heartbeats, and the debounced signal."""
        last_flush = 0.0
        deadline = self.inp.spec.timeout_seconds + DEADLINE_SLACK
        grace = self.settings.unschedulable_grace_seconds
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            for node in list(self.started):
                if node in self.outcomes or node in self.reported:
                    continue
                pod = self.pods.get(node)
                age = now - self.started[node]
                if age > deadline:
                    await self._check_job(node, deadline_passed=True)
                elif pod is None:  # deleted, or never created: ask the Job and the node
                    if min(age, now - self.checked_job.get(node, 0.0)) >= NODE_CHECK_INTERVAL:
                        await self._check_job(node, deadline_passed=False)
                elif (pod.get("status") or {}).get("phase") == "Pending":
                    await self._evaluate(node, pod)
                    if node not in self.outcomes and age >= grace:
                        stuck = await self._node_verdict(node)
                        if stuck is not None:
                            await self._finish(node, stuck, delete_job=True)
            if self.unsent and now - last_flush >= SIGNAL_INTERVAL:
                await self._flush()
                last_flush = time.monotonic()
            activity.heartbeat(sorted(self.index[n] for n in self.reported))

    # Outcomes ------------------------------------------------------------------------------

    async def _finish(self, node: str, verdict: Verdict, *, delete_job: bool) -> None:
        if node in self.outcomes or node in self.reported:
            return
        if verdict.ok:
            outcome = NodeOutcome(node_name=node, ok=True)
            NODES_PROCESSED.labels("completed").inc()
        else:
            reason = verdict.reason or FailureReason.CONTAINER_FAILED
            outcome = NodeOutcome(
                node_name=node,
                ok=False,
                failure=FailedNodeDetail(
                    node_name=node,
                    image=verdict.image,
                    reason=reason,
                    message=verdict.message,
                    timestamp=datetime.now(UTC),
                ),
            )
            NODES_PROCESSED.labels("failed").inc()
            NODE_FAILURES.labels(reason.value).inc()
            log.info("node %s failed: %s %s", node, reason.value, verdict.message, extra=self.extra)
        if node in self.started:
            NODE_PREWARM_SECONDS.observe(time.monotonic() - self.started[node])
        self.outcomes[node] = outcome
        self.unsent.append(outcome)
        if node in self.holding:
            self.holding.discard(node)
            self.slots.release()
        if delete_job:
            # Stop the kubelet's back-off loop now; the workflow's clean-up is the backstop.
            # Before _maybe_done: the batch's last outcome ends the batch and cancels this
            # task, and a completed task runs no clean-up, so the Job would stay.
            with contextlib.suppress(KubernetesError):
                await self.kube.call(
                    "delete",
                    "jobs",
                    self.kube.batch.delete_namespaced_job,
                    job_name(self.inp.task_id, node),
                    self.kube.namespace,
                    propagation_policy="Background",
                )
        self._maybe_done()

    async def _flush(self) -> None:
        """Signal new outcomes to the workflow, then record them as reported (heartbeat)."""
        if not self.unsent:
            return
        batch, self.unsent = self.unsent, []
        try:
            handle = activity.client().get_workflow_handle(self.inp.task_id)
            await handle.signal(
                SIGNAL_NODE_OUTCOMES, NodeOutcomes(unit=self.inp.unit, outcomes=batch)
            )
        except Exception as err:  # the activity result carries them anyway
            log.warning("could not signal outcomes: %s", err, extra=self.extra)
            self.unsent = batch + self.unsent
            return
        self.reported.update(o.node_name for o in batch)
        activity.heartbeat(sorted(self.index[n] for n in self.reported))


__all__ = ["RUNNING", "PrewarmActivities"]
