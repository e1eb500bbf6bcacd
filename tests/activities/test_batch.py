"""The batch activity's control loop (activities/batch.py) against a scripted Kubernetes.

Each test drives watch events by hand and asserts outcomes and the requests made: admission
refusals fail fast, a NotReady flap fails nothing, heartbeats never wait on Kubernetes, node
state comes from one node watch, Events are read once per pod state, a node's create is retried
on its own, and per-node state is pruned.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities import batch as batch_mod
from activities import creating
from activities.batch import BatchRun
from activities.errors import KubernetesServerError
from activities.jobspec import job_name
from activities.nodewatch import NodeWatch
from common.engine import NodeOutcome, NodeOutcomes, PrewarmNodesInput, PullSpec
from common.models import FailureReason, TaskSpec
from common.settings import Settings
from tests.activities.fakekube import IMAGE, TASK, FakeKube, node_obj

pytestmark = pytest.mark.unit

NODES = [f"node-{i:02d}" for i in range(4)]


class Harness:
    def __init__(self, nodes: list[str], grace: int = 60) -> None:
        self.kube = FakeKube(nodes)
        self.settings = Settings(unschedulable_grace_seconds=grace, metrics_port=0)
        self.signalled: list[NodeOutcome] = []
        self.beats: list[float] = []
        spec = PullSpec.of(TaskSpec(images=[IMAGE], batch_size=len(nodes), timeout_seconds=600))
        self.inp = PrewarmNodesInput(
            task_id=TASK, unit=1, total_units=1, nodes=nodes, spec=spec, in_flight=len(nodes)
        )
        self.watch = NodeWatch(self.kube)  # type: ignore[arg-type]
        self.run = BatchRun(
            self.kube,  # type: ignore[arg-type]
            self.settings,
            self.inp,
            self.watch,
            signal=self._signal,
        )
        self.env = ActivityEnvironment()
        self.env.on_heartbeat = lambda *a: self.beats.append(asyncio.get_running_loop().time())

    async def _signal(self, batch: NodeOutcomes) -> None:
        self.signalled.extend(batch.outcomes)

    def outcome(self, node: str) -> NodeOutcome | None:
        return self.run.outcomes.unreported.get(node) or next(
            (o for o in self.signalled if o.node_name == node), None
        )

    async def succeed(self, node: str) -> None:
        await self.kube.emit("pods", "MODIFIED", self.kube.pod(node, {"phase": "Succeeded"}))


@asynccontextmanager
async def running(h: Harness) -> AsyncIterator[asyncio.Task[Any]]:
    task = asyncio.create_task(h.env.run(h.run.run))
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        h.watch.close()


async def test_admission_refusal_fails_its_node_in_seconds_with_the_servers_message() -> None:
    h = Harness(NODES[:2])
    message = (
        f'Error creating: pods "{job_name(TASK, NODES[0])}-x7k2p" is forbidden: '
        "no PriorityClass with name ips-missing was found"
    )
    async with running(h) as task:
        await h.kube.until(lambda: len(h.kube.jobs) == 2)
        await h.kube.emit(
            "events",
            "ADDED",
            {
                "involvedObject": {"kind": "Job", "name": job_name(TASK, NODES[0])},
                "reason": "FailedCreate",
                "type": "Warning",
                "message": message,
            },
        )
        await h.succeed(NODES[1])
        result = await asyncio.wait_for(task, 10)
    outcomes = {o.node_name: o for o in [*h.signalled, *result.outcomes]}
    denied = outcomes[NODES[0]].failure
    assert denied is not None and denied.reason == FailureReason.ADMISSION_DENIED
    assert "no PriorityClass with name ips-missing was found" in denied.message
    assert outcomes[NODES[1]].ok
    # One Event list and one Event watch for the batch: no polling per Job.
    assert h.kube.requests[("list", "events")] == 1
    assert h.kube.requests[("delete", "jobs")] == 1


async def test_a_transient_failed_create_is_not_a_refusal() -> None:
    h = Harness(NODES[:1])
    async with running(h) as task:
        await h.kube.until(lambda: h.kube.jobs)
        await h.kube.emit(
            "events",
            "ADDED",
            {
                "involvedObject": {"kind": "Job", "name": job_name(TASK, NODES[0])},
                "reason": "FailedCreate",
                "message": "Error creating: Timeout: request did not complete within 60s",
            },
        )
        await h.succeed(NODES[0])
        result = await asyncio.wait_for(task, 10)
    assert [o.ok for o in [*h.signalled, *result.outcomes]] == [True]


def _pending_pod(h: Harness, node: str) -> dict[str, Any]:
    return h.kube.pod(node, h.kube.waiting("ContainerCreating", ""))


async def test_not_ready_grace_runs_from_the_nodes_transition_not_the_pods_start() -> None:
    """node-00 flaps NotReady (transition now, grace 60 s): it does not fail and later
    succeeds. node-01 has been NotReady for 5 minutes: it fails at once, although its pod
    started a moment ago."""
    h = Harness(NODES[:2], grace=60)
    now = datetime.now(UTC)
    h.kube.nodes[NODES[0]] = node_obj(NODES[0], ready=False, since=now)
    h.kube.nodes[NODES[1]] = node_obj(NODES[1], ready=False, since=now - timedelta(minutes=5))
    async with running(h) as task:
        await h.kube.until(lambda: len(h.kube.jobs) == 2)
        for node in NODES[:2]:
            await h.kube.emit("pods", "ADDED", _pending_pod(h, node))
        failed = await h.kube.until(lambda: h.outcome(NODES[1]))
        assert failed.failure is not None
        assert failed.failure.reason == FailureReason.NODE_NOT_READY
        assert "Kubelet stopped posting node status" in failed.failure.message
        await asyncio.sleep(2 * batch_mod.TICK)  # ticks re-check the flapping node: no verdict
        assert h.outcome(NODES[0]) is None
        await h.kube.emit("nodes", "MODIFIED", node_obj(NODES[0], ready=True, since=now))
        await h.succeed(NODES[0])
        await asyncio.wait_for(task, 10)
    assert h.outcome(NODES[0]) is not None and h.outcome(NODES[0]).ok  # type: ignore[union-attr]
    # Node state came from one listing and the watch: never a GET per node.
    assert h.kube.requests[("get", "nodes")] == 0
    assert h.kube.requests[("list", "nodes")] == 1


async def test_a_node_deleted_from_the_watch_fails_node_gone() -> None:
    h = Harness(NODES[:1])
    async with running(h) as task:
        await h.kube.until(lambda: h.kube.jobs)
        await h.kube.emit("pods", "ADDED", _pending_pod(h, NODES[0]))
        await h.kube.until(lambda: h.watch.synced)
        await h.kube.emit("nodes", "DELETED", node_obj(NODES[0]))
        result = await asyncio.wait_for(task, 10)
    [o] = [*h.signalled, *result.outcomes]
    assert o.failure is not None and o.failure.reason == FailureReason.NODE_GONE
    assert h.kube.requests[("get", "nodes")] == 0


async def test_heartbeats_keep_coming_while_every_kubernetes_call_is_stuck() -> None:
    h = Harness(NODES[:2])
    h.kube.gate = asyncio.Event()  # every request blocks, as behind a starved rate limiter
    async with running(h):
        await h.kube.until(lambda: h.kube.blocked >= 1)
        before = len(h.beats)
        await h.kube.until(lambda: len(h.beats) >= before + 3, within=10)
        assert not h.kube.jobs  # still nothing created: the heartbeats did not wait for it
        h.kube.gate.set()


async def test_events_are_read_once_per_pod_state_not_on_a_timer() -> None:
    """A pod in back-off with the generic message: its Events are listed once for that
    resourceVersion, however many ticks pass; a new state reads them once more."""
    h = Harness(NODES[:1])
    backoff = h.kube.waiting("ImagePullBackOff", f'Back-off pulling image "{IMAGE}"')
    async with running(h) as task:
        await h.kube.until(lambda: h.kube.jobs)
        await h.kube.emit("pods", "ADDED", h.kube.pod(NODES[0], backoff))
        await asyncio.sleep(6 * batch_mod.TICK)
        by_pod = h.kube.requests[("list", "events")] - 1  # minus the FailedCreate listing
        assert by_pod == 1
        await h.kube.emit("pods", "MODIFIED", h.kube.pod(NODES[0], backoff))  # a new state
        await asyncio.sleep(2 * batch_mod.TICK)
        assert h.kube.requests[("list", "events")] - 1 == 2
        await h.succeed(NODES[0])
        await asyncio.wait_for(task, 10)


async def test_events_are_not_read_when_the_specific_error_was_seen(
) -> None:  # fmt: skip
    h = Harness(NODES[:1])
    specific = h.kube.waiting(
        "ErrImagePull", f'failed to pull "{IMAGE}": unexpected status 503 Service Unavailable'
    )
    backoff = h.kube.waiting("ImagePullBackOff", f'Back-off pulling image "{IMAGE}"')
    async with running(h) as task:
        await h.kube.until(lambda: h.kube.jobs)
        await h.kube.emit("pods", "ADDED", h.kube.pod(NODES[0], specific))
        await h.kube.emit("pods", "MODIFIED", h.kube.pod(NODES[0], backoff))
        await asyncio.sleep(4 * batch_mod.TICK)
        assert h.run.last_error[NODES[0]].message.startswith("failed to pull")
        await h.succeed(NODES[0])
        await asyncio.wait_for(task, 10)
    assert h.kube.requests[("list", "events")] == 1  # the FailedCreate listing only


async def test_a_nodes_create_is_retried_on_its_own_and_the_batch_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(creating, "CREATE_RETRY_FIRST", 0.01)
    h = Harness(NODES[:3])
    outage = [KubernetesServerError("etcdserver: request timed out", code=500) for _ in range(3)]
    h.kube.create_errors[NODES[1]] = outage
    async with running(h) as task:
        await h.kube.until(lambda: len(h.kube.jobs) == 3)
        for node in NODES[:3]:
            await h.succeed(node)
        result = await asyncio.wait_for(task, 10)
    assert sorted(o.node_name for o in [*h.signalled, *result.outcomes] if o.ok) == NODES[:3]
    assert h.kube.requests[("create", "jobs")] == 6
    # Per-node state is pruned as nodes finish.
    assert not (h.run.pods or h.run.started or h.run.last_error or h.run.events_read)
