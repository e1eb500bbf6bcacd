"""One attempt of the batch activity: create or adopt Jobs for a batch of nodes (in rolling
mode, the window), watch them, and finish each node with an outcome.

The control loop is a handful of independent tasks, so that no rate-limited Kubernetes call can
delay another concern:

- `heartbeat` and `report` (activities/outcomes.py): heartbeats every second from its own task
  (the reported node indexes), whatever the API server and the client-side rate limiter do;
  signals new outcomes to the workflow, at most once a second;
- `create` (activities/creating.py): creates the Jobs, at most `in_flight` unfinished at once,
  retrying each node on its own (a node whose create keeps failing never aborts the batch);
- `watch` (activities/podwatch.py): one label-selected pod watch for the batch; a pod is
  classified on each change, and its Events are read (activities/podevents.py) at most once
  per pod state (resourceVersion), only when its message is the generic back-off; a stuck
  pod's node may explain it (activities/nodeverdict.py);
- `refusals` (activities/refusals.py): one Event watch for `FailedCreate` on Jobs, so an
  admission refusal (a missing PriorityClass, a webhook, Pod Security, a quota) fails its node
  within seconds (`AdmissionDenied`, with the API server's message), not at the deadline;
- `tick`: the time-based checks no event triggers (Unschedulable grace, deadline, a pod that
  vanished), reading node readiness from the worker's shared node watch (no request).
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

from activities.classify import Verdict, classify_pod, job_verdict, timeout_verdict
from activities.creating import JobCreator
from activities.errors import (
    KubernetesError,
    KubernetesNotFound,
)
from activities.jobspec import NODE_ANNOTATION, job_name, unit_selector
from activities.kube import Kube
from activities.nodesource import NodeSource
from activities.nodeverdict import node_verdict
from activities.nodewatch import NodeWatch
from activities.outcomes import OutcomeBook, Signaller, outcome_of
from activities.pacing_gate import PacingGate
from activities.podevents import verdict_from_events
from activities.podwatch import PodWatch
from activities.refusals import admission_refusal, denied, watch_refusals
from common.engine import (
    SIGNAL_NODE_OUTCOMES,
    NodeOutcomes,
    PrewarmNodesInput,
    PrewarmNodesResult,
)
from common.models import FailureReason
from common.observability import NODE_PREWARM_SECONDS
from common.settings import Settings

log = logging.getLogger(__name__)

TICK = 0.5
JOB_CHECK_FIRST = 5.0  # a Job with no pod is GET after this long, then at doubling intervals
JOB_CHECK_MAX = 60.0
# How long beyond activeDeadlineSeconds the activity waits for the Job's verdict before it asks
# the Job and the node; the workflow's budget allows it per round (ROUND_SLACK_SECONDS in
# workflows/timeouts.py, kept equal by tests/workflows/test_timeouts.py).
DEADLINE_SLACK = 30.0
GENERIC_BACKOFF = "Back-off pulling image"


class BatchRun:
    """One attempt of one batch activity (see the module docstring)."""

    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        batch: PrewarmNodesInput,
        nodes: NodeWatch,
        signal: Signaller | None = None,
        source: NodeSource | None = None,
    ) -> None:
        self.kube, self.settings, self.batch, self.nodes = kube, settings, batch, nodes
        self.source = source
        self.extra = {"taskId": batch.task_id}
        self.gate = PacingGate(batch.in_flight, batch.pacing, self.extra)
        self.outcomes = OutcomeBook(
            batch.unit,
            batch.nodes,
            signal or self._signal_workflow,
            self.extra,
            pacing=lambda: self.gate.window,
            resume=source.snapshot if source is not None else None,
        )
        self.outcomes.open = source is not None
        self.done = self.outcomes.done  # nodes with an outcome (reported or not)
        self.index = self.outcomes.index
        self.by_job = {job_name(batch.task_id, n): n for n in batch.nodes}
        # Per-node state, pruned as soon as the node has its outcome.
        self.started: dict[str, float] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.last_error: dict[str, Verdict] = {}
        self.events_read: dict[str, str] = {}
        self.next_job_check: dict[str, tuple[float, float]] = {}
        self.creator = JobCreator(
            kube,
            settings,
            batch,
            is_done=self.done.__contains__,
            on_exists=self._job_exists,
            on_refused=self._job_refused,
            extra=self.extra,
            gate=self.gate,
        )
        self.stop = threading.Event()
        self.pod_watch = PodWatch(
            kube,
            unit_selector(batch.task_id, batch.unit),
            self.stop,
            self.extra,
            on_listed=self._on_listed,
            on_changed=self._on_pod,
            on_deleted=self._on_pod_deleted,
        )

    # The main loop ---------------------------------------------------------------------

    async def run(self) -> PrewarmNodesResult:
        self.t0 = time.monotonic()
        for node in self.source.restore() if self.source is not None else []:
            self._add(node, feed=False)  # the earlier attempt's nodes, in its order
        restored = self.outcomes.restore()
        if restored is not None and self.gate.window is not None:
            self.gate.window = restored  # the window as the earlier attempt left it
        log.info(
            "batch %d/%d: %d nodes (%d already reported), %d in flight",
            self.batch.unit,
            self.batch.total_units,
            len(self.batch.nodes),
            len(self.outcomes.reported),
            self.batch.in_flight,
            extra=self.extra,
        )
        async with self.nodes.use():
            heartbeat = asyncio.create_task(self.outcomes.heartbeat_loop(), name="heartbeat")
            try:
                if self.source is not None or len(self.done) < len(self.outcomes.nodes):
                    await self.pod_watch.relist()
                await self._run_loops()
            finally:
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)
        log.info(
            "batch %d/%d done in %.1fs: %d outcomes, %d Jobs created, %d adopted; "
            "longest gap between heartbeats %.2fs",
            self.batch.unit,
            self.batch.total_units,
            time.monotonic() - self.t0,
            len(self.done),
            self.creator.created,
            self.creator.adopted,
            self.outcomes.max_heartbeat_gap,
            extra=self.extra,
        )
        # Outcomes not signalled yet travel in the result (one history event, not a signal).
        return PrewarmNodesResult(
            unit=self.batch.unit,
            outcomes=list(self.outcomes.unreported.values()),
            jobs_created=self.creator.created,
            jobs_adopted=self.creator.adopted,
            pacing=self.gate.window,
        )

    async def _run_loops(self) -> None:
        tasks = [
            asyncio.create_task(self.pod_watch.run(), name="watch"),
            asyncio.create_task(self._refusals_loop(), name="refusals"),
            asyncio.create_task(self._create_loop(), name="create"),
            asyncio.create_task(self._tick_loop(), name="tick"),
            asyncio.create_task(self.outcomes.report_loop(), name="report"),
        ]
        if self.source is not None:
            tasks.append(asyncio.create_task(self._source_loop(), name="source"))
        done_wait = asyncio.create_task(self.outcomes.all_done.wait())
        try:
            self.outcomes.maybe_done()
            waiting: set[asyncio.Task[Any]] = {done_wait, *tasks}
            # The create loop ends normally once every Job exists: keep watching until every
            # node has an outcome; any loop that dies raises (the activity is retried).
            while not done_wait.done():
                finished, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    if task is not done_wait:
                        task.result()
        finally:
            self.stop.set()
            for task in [done_wait, *tasks]:
                task.cancel()
            await asyncio.gather(done_wait, *tasks, return_exceptions=True)

    async def _signal_workflow(self, outcomes: NodeOutcomes) -> None:
        handle = activity.client().get_workflow_handle(self.batch.task_id)
        await handle.signal(SIGNAL_NODE_OUTCOMES, outcomes)

    # Creating Jobs (activities/creating.py) ----------------------------------------------

    async def _create_loop(self) -> None:
        await self.creator.run(self.outcomes.pending(), more=self.source is not None)

    async def _source_loop(self) -> None:
        """Nodes from the source (NodeSource) while it runs; then the unit may end."""
        assert self.source is not None
        await self.source.run(self._add)
        self.creator.close()
        self.outcomes.close()

    def _add(self, node: str, *, feed: bool = True) -> None:
        if self.outcomes.add(node):
            self.by_job[job_name(self.batch.task_id, node)] = node
            if feed:
                self.creator.feed(node)

    def _job_exists(self, node: str) -> None:
        # Only a Job known to exist is timed and checked (a GET before it exists would 404).
        self.started.setdefault(node, time.monotonic())

    async def _job_refused(self, node: str, message: str) -> None:
        await self._finish(node, denied(message), delete_job=False)

    # Judging pods (activities/podwatch.py watches them) --------------------------------

    async def _on_listed(self, pod: dict[str, Any]) -> None:
        if self.source is not None:  # a pod of this unit whose node the heartbeat missed
            node = ((pod.get("metadata") or {}).get("annotations") or {}).get(NODE_ANNOTATION)
            if node and node not in self.index and self.source.adopt(node):
                self._add(node, feed=False)
        node = self._node_of(pod)
        if node is not None and node not in self.started and node not in self.done:
            self.started[node] = time.monotonic()  # adopted: it was created before
            self.creator.adopted += 1
        await self._on_pod(pod)

    async def _refusals_loop(self) -> None:
        """FailedCreate Events on this batch's Jobs: the API server refused their pods."""
        await watch_refusals(self.kube, self._on_refusal, self.stop, self.extra)

    async def _on_refusal(self, event: dict[str, Any]) -> None:
        involved = event.get("involvedObject") or {}
        node = self.by_job.get(involved.get("name") or "")
        message = event.get("message") or ""
        if node is None or node in self.done or node in self.pods:
            return  # not ours, finished, or a pod exists after all
        if involved.get("kind") == "Job" and admission_refusal(message):
            await self._finish(node, denied(message), delete_job=True)

    def _node_of(self, pod: dict[str, Any]) -> str | None:
        meta = pod.get("metadata") or {}
        node = (meta.get("annotations") or {}).get(NODE_ANNOTATION)
        if node in self.index:
            return node
        owner = (meta.get("labels") or {}).get("job-name")
        return self.by_job.get(owner or "")

    async def _on_pod(self, pod: dict[str, Any]) -> None:
        node = self._node_of(pod)
        if node is None or node in self.done:
            return
        self.pods[node] = pod
        await self._evaluate(node, pod)

    async def _evaluate(self, node: str, pod: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        grace = self.settings.engine_seconds(self.settings.unschedulable_grace_seconds)
        verdict = classify_pod(pod, now=now, unschedulable_grace=grace)
        if (
            not verdict.done
            and verdict.reason is not None
            and verdict.reason != FailureReason.UNSCHEDULABLE
            and GENERIC_BACKOFF in verdict.message
        ):
            verdict = await self._specific_error(node, pod, verdict, now)
        if not verdict.done and verdict.reason is not None:
            if verdict.reason != FailureReason.UNSCHEDULABLE:
                self.last_error[node] = verdict
            if verdict.reason == FailureReason.RATE_LIMITED:
                self.gate.rate_limited(node)  # the kubelet retries; the window halves now
        if verdict.done and verdict.reason == FailureReason.UNSCHEDULABLE:
            verdict = await self._node_verdict(node, force=True) or verdict
        if verdict.done:
            await self._finish(node, verdict, delete_job=not verdict.ok)
        elif (pod.get("status") or {}).get("phase") == "Pending":
            node_v = await self._node_verdict(node)
            if node_v is not None:
                await self._finish(node, node_v, delete_job=True)

    async def _specific_error(
        self, node: str, pod: dict[str, Any], verdict: Verdict, now: datetime
    ) -> Verdict:
        """The generic back-off message hides the cause: the specific error seen before for
        the same image, or the pod's Events, read at most once per pod state."""
        known = self.last_error.get(node)
        if (
            known is not None
            and known.image == verdict.image
            and GENERIC_BACKOFF not in known.message
        ):
            return known
        rv = (pod.get("metadata") or {}).get("resourceVersion") or ""
        if self.events_read.get(node) == rv:
            return known or verdict
        self.events_read[node] = rv
        grace = self.settings.engine_seconds(self.settings.unschedulable_grace_seconds)
        return await verdict_from_events(self.kube, pod, verdict, now=now, grace=grace)

    async def _node_verdict(self, node: str, *, force: bool = False) -> Verdict | None:
        grace = self.settings.engine_seconds(self.settings.unschedulable_grace_seconds)
        return await node_verdict(self.kube, self.nodes, node, grace=grace, force=force)

    async def _on_pod_deleted(self, pod: dict[str, Any]) -> None:
        node = self._node_of(pod)
        if node is None or node in self.done:
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
        try:
            job = await kube.call(
                "get",
                "jobs",
                kube.batch.read_namespaced_job,
                job_name(self.batch.task_id, node),
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

    def _job_check_due(self, node: str, now: float, age: float) -> bool:
        """A Job with no pod is checked after JOB_CHECK_FIRST, then at doubling intervals."""
        first = self.settings.engine_seconds(JOB_CHECK_FIRST)
        due, interval = self.next_job_check.get(node, (0.0, first))
        if age < first or now < due:
            return False
        longest = self.settings.engine_seconds(JOB_CHECK_MAX)
        self.next_job_check[node] = (now + interval, min(longest, interval * 2))
        return True

    async def _tick_loop(self) -> None:
        """Time-based checks the watches cannot trigger; no request unless one is due."""
        deadline = self.settings.engine_seconds(self.batch.spec.timeout_seconds + DEADLINE_SLACK)
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            for node in list(self.started):
                if node in self.done:
                    continue
                pod = self.pods.get(node)
                age = now - self.started[node]
                if age > deadline:
                    await self._check_job(node, deadline_passed=True)
                elif pod is None:  # deleted, or never created: ask the Job and the node
                    if self._job_check_due(node, now, age):
                        await self._check_job(node, deadline_passed=False)
                elif (pod.get("status") or {}).get("phase") == "Pending":
                    await self._evaluate(node, pod)

    # Outcomes ------------------------------------------------------------------------------

    async def _finish(self, node: str, verdict: Verdict, *, delete_job: bool) -> None:
        if node in self.done:
            return
        outcome = outcome_of(node, verdict, self.extra)
        started = self.started.pop(node, None)
        if started is not None:
            NODE_PREWARM_SECONDS.observe(time.monotonic() - started)
        for state in (self.pods, self.last_error, self.events_read, self.next_job_check):
            state.pop(node, None)
        self.outcomes.record(outcome)
        self.gate.outcome(node, outcome.ok, outcome.failure.reason if outcome.failure else None)
        self.creator.release(node)
        if delete_job:
            # Stop the kubelet's back-off loop now; the workflow's clean-up is the backstop.
            # Before maybe_done: the batch's last outcome ends the batch and cancels this
            # task, and a completed task runs no clean-up, so the Job would stay.
            with contextlib.suppress(KubernetesError):
                await self.kube.call(
                    "delete",
                    "jobs",
                    self.kube.batch.delete_namespaced_job,
                    job_name(self.batch.task_id, node),
                    self.kube.namespace,
                    propagation_policy="Background",
                )
        self.outcomes.maybe_done()
