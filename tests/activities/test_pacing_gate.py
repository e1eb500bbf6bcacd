"""The AIMD window driving the batch activity's Jobs in flight (activities/pacing_gate.py).

The first 429 seen on a pod halves the window at once (while the kubelet still retries), new
Jobs wait until fewer than the window are in flight, and the window travels to the workflow
with the outcomes and in the heartbeat details (a retried attempt resumes it).
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio.testing import ActivityEnvironment

from activities.batch import BatchRun
from activities.jobspec import NODE_ANNOTATION
from activities.nodewatch import NodeWatch
from activities.pacing_gate import PacingGate
from common.engine import NodeOutcomes, PrewarmNodesInput, PullSpec
from common.models import FailureReason, TaskSpec
from common.pacing import AimdWindow
from common.settings import Settings
from tests.activities.fakekube import IMAGE, TASK, FakeKube

pytestmark = pytest.mark.unit

RATE_MESSAGE = (
    f'Failed to pull image "{IMAGE}": failed to resolve reference "{IMAGE}": unexpected '
    "status from HEAD request to https://registry.example.com/v2/team/app/manifests/1: "
    "429 Too Many Requests"
)


async def test_the_fixed_gate_without_a_window() -> None:
    gate = PacingGate(2, None)
    await gate.acquire("a")
    await gate.acquire("b")
    third = asyncio.create_task(gate.acquire("c"))
    await asyncio.sleep(0.05)
    assert not third.done()
    gate.rate_limited("a")  # no window: no change
    assert gate.limit == 2
    gate.release("a")
    await asyncio.wait_for(third, 1)
    assert gate.holding == {"b", "c"}


def test_one_429_per_node_and_the_outcome_of_a_counted_node_is_not_a_second() -> None:
    gate = PacingGate(8, AimdWindow(ceiling=8, floor=2))
    gate.rate_limited("a")
    gate.rate_limited("a")
    assert gate.limit == 4 and gate.window is not None and gate.window.decreases == 1
    gate.outcome("a", False, FailureReason.RATE_LIMITED)  # its 429 was already counted
    assert gate.window.decreases == 1
    for n in "bcdefgh":  # the rest of the burst (cooldown 8) cannot halve again
        gate.rate_limited(n)
    assert gate.limit == 4 and gate.window.decreases == 1
    gate.rate_limited("z")  # a new burst
    assert gate.limit == 2 and gate.history == [4, 2]
    gate.rate_limited("y")
    assert gate.limit == 2  # the floor


def _job_nodes(kube: FakeKube) -> set[str]:
    return {j["metadata"]["annotations"][NODE_ANNOTATION] for j in kube.jobs.values()}


async def test_a_429_halves_the_jobs_in_flight_and_the_window_reaches_the_workflow() -> None:
    nodes = [f"node-{i:02d}" for i in range(12)]
    kube = FakeKube(nodes)
    spec = PullSpec.of(TaskSpec(images=[IMAGE], batch_size=8, timeout_seconds=600))
    inp = PrewarmNodesInput(task_id=TASK, unit=1, total_units=1, nodes=nodes, spec=spec,
                            in_flight=8, pacing=AimdWindow(ceiling=8))  # fmt: skip
    signals: list[NodeOutcomes] = []
    beats: list[tuple[object, ...]] = []

    async def signal(batch: NodeOutcomes) -> None:
        signals.append(batch)

    async def succeed(node: str) -> None:
        await kube.emit("pods", "MODIFIED", kube.pod(node, {"phase": "Succeeded"}))
        await kube.until(lambda: node in run.outcomes.done)

    watch = NodeWatch(kube)  # type: ignore[arg-type]
    run = BatchRun(kube, Settings(metrics_port=0), inp, watch, signal=signal)  # type: ignore[arg-type]
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    task = asyncio.create_task(env.run(run.run))
    try:
        await kube.until(lambda: len(kube.jobs) == 8)
        rate = kube.pod(nodes[0], kube.waiting("ErrImagePull", RATE_MESSAGE))
        await kube.emit("pods", "MODIFIED", rate)
        # The window halves while node-00 is still retrying, and is signalled with no outcome.
        await kube.until(lambda: any(s.pacing and s.pacing.window == 4 for s in signals))
        assert run.gate.limit == 4 and not run.outcomes.done
        for n in nodes[1:4]:  # 8 -> 5 in flight, window 4: no new Job
            await succeed(n)
        await asyncio.sleep(0.3)
        assert len(kube.jobs) == 8
        await succeed(nodes[4])  # 4 successes: the window grows to 5, and 4 are in flight
        await kube.until(lambda: len(kube.jobs) == 9)
        await asyncio.sleep(0.3)
        assert len(kube.jobs) == 9
        for n in [nodes[0], *nodes[5:]]:
            await kube.until(lambda n=n: n in _job_nodes(kube))
            await succeed(n)
        result = await asyncio.wait_for(task, 20)
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        watch.close()
    assert result.pacing is not None and result.pacing.decreases == 1
    # 4 + 1 after 4 successes (one per window's worth), then, once 5 pulls have succeeded with
    # no 429 since (a clean window: the limit eased), one per success: back at the ceiling
    assert result.pacing.window == 8 and result.pacing.clean == 12
    assert run.gate.history == [4, 5, 6, 7, 8]
    assert any(len(b) == 2 and b[1]["window"] == 4 for b in beats)  # heartbeat carries it
    outcomes = [o for s in signals for o in s.outcomes] + result.outcomes
    assert len(outcomes) == 12 and all(o.ok for o in outcomes)


async def test_without_a_window_a_429_keeps_the_batch_size_in_flight() -> None:
    """`pacing: fixed` (the workflow passes no window): the 429'd pod retries as the kubelet
    does, the Jobs in flight stay at `in_flight`, and no window travels to the workflow."""
    nodes = [f"node-{i:02d}" for i in range(10)]
    kube = FakeKube(nodes)
    spec = PullSpec.of(TaskSpec(images=[IMAGE], batch_size=8, timeout_seconds=600))
    inp = PrewarmNodesInput(task_id=TASK, unit=1, total_units=1, nodes=nodes, spec=spec,
                            in_flight=8, pacing=None)  # fmt: skip
    signals: list[NodeOutcomes] = []

    async def signal(batch: NodeOutcomes) -> None:
        signals.append(batch)

    async def succeed(node: str) -> None:
        await kube.emit("pods", "MODIFIED", kube.pod(node, {"phase": "Succeeded"}))
        await kube.until(lambda: node in run.outcomes.done)

    watch = NodeWatch(kube)  # type: ignore[arg-type]
    run = BatchRun(kube, Settings(metrics_port=0), inp, watch, signal=signal)  # type: ignore[arg-type]
    task = asyncio.create_task(ActivityEnvironment().run(run.run))
    try:
        await kube.until(lambda: len(kube.jobs) == 8)
        for n in nodes[:3]:  # three pods throttled at once, still retrying
            rate = kube.pod(n, kube.waiting("ErrImagePull", RATE_MESSAGE))
            await kube.emit("pods", "MODIFIED", rate)
        await asyncio.sleep(0.3)
        assert run.gate.limit == 8 and run.gate.window is None and run.gate.history == []
        await succeed(nodes[3])  # one slot frees: the next Job at once, 429s or not
        await kube.until(lambda: len(kube.jobs) == 9)
        await succeed(nodes[4])
        await kube.until(lambda: len(kube.jobs) == 10)
        for n in [*nodes[:3], *nodes[5:]]:
            await succeed(n)
        result = await asyncio.wait_for(task, 20)
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        watch.close()
    assert result.pacing is None and all(s.pacing is None for s in signals)
    outcomes = [o for s in signals for o in s.outcomes] + result.outcomes
    assert len(outcomes) == 10 and all(o.ok for o in outcomes)
