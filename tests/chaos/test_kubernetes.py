"""Chaos: a flaky Kubernetes API, nodes that vanish, fail or join mid-task, and cancel storms.

Each scenario ends exactly as it implies: counts and reasons, no node pulled twice, and no Job or
Pod of the task left once TTL or clean-up has run.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path

import pytest
from ips_client import Conflict

from tests.chaos.chaoslib import (
    RecordingProxy,
    Sim,
    assert_end_state,
    fresh_image,
    wait_final,
    wait_no_objects,
    wait_progress,
)
from tests.stack import Stack, sample
from tests.waiting import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.integration]


def _create(stack: Stack, image: str, pool: str, batch: int) -> str:
    with stack.client() as ips:
        return ips.create(images=[image], batch_size=batch, node_selector={"chaos": pool}).task_id


def _requests_with_code(stack: Stack, code: str) -> float:
    samples = stack.metrics("worker").get("ips_k8s_requests_total", {})
    return sum(v for labels, v in samples.items() if dict(labels).get("code") == code)


def test_kubernetes_faults(chaos_stack: Stack, sim: Sim, tmp_path: Path) -> None:
    """10 % of requests answer 500, watches drop every 3 s, a 429 burst with Retry-After, then a
    410 Gone on re-watch: the task completes exactly, the worker's metrics show the retries, and
    no request was re-sent before its Retry-After (timestamped by a proxy)."""
    proxy = RecordingProxy(chaos_stack.sim_url).start()
    direct = str(chaos_stack.kubeconfig)
    try:
        kubeconfig = proxy.kubeconfig(chaos_stack.kubeconfig, tmp_path / "proxy.kubeconfig")
        chaos_stack.procs["worker"].stop()
        chaos_stack.respawn("worker", KUBECONFIG=str(kubeconfig))
        sim.faults(http500={"*": 0.1}, watchDisconnectSeconds=3)
        image = fresh_image("faults")
        task_id = _create(chaos_stack, image, "faults", batch=10)
        wait_progress(chaos_stack, task_id, at_least=10)
        # A burst: every create answers 429 for 2.5 s, longer than a batch's creations.
        sim.faults(http429={"create": 1.0}, retryAfterSeconds=2)
        time.sleep(2.5)
        sim.faults(http429={})
        wait_progress(chaos_stack, task_id, at_least=30)
        sim.faults(expireNextWatch=True)
        task = wait_final(chaos_stack, task_id, timeout=180)
        sim.clear_faults()
        assert_end_state(sim, task, image=image, completed=60)

        assert _requests_with_code(chaos_stack, "500") > 0
        assert _requests_with_code(chaos_stack, "429") > 0
        assert sample(chaos_stack.metrics("worker"), "ips_k8s_rate_limited_total") > 0
        rate_limited = [e for e in proxy.exchanges if e.status == HTTPStatus.TOO_MANY_REQUESTS]
        assert rate_limited and all(e.retry_after == 2 for e in rate_limited)
        assert proxy.early_retries() == []
        # The next watch may be the batch's pod watch, its FailedCreate Event watch or the
        # worker's node watch: whichever expired was relisted and resumed.
        watches = sim.stats()["requests"]["watch"]
        assert sum(w.get("410", 0) for w in watches.values()) >= 1, watches
        log = chaos_stack.logs("worker")
        assert "watch expired (410 Gone): relisting" in log
    finally:
        sim.clear_faults()
        # The worker first: its node watch outlives the task by up to a minute (shared by the
        # next batches), and the proxy's shutdown waits for open requests.
        chaos_stack.procs["worker"].stop()
        proxy.stop()
        chaos_stack.respawn("worker", KUBECONFIG=direct)


def test_nodes_deleted_notready_and_joining(chaos_stack: Stack, sim: Sim) -> None:
    """Mid-pull, one node is deleted (NodeGone) and one goes NotReady (NodeNotReady, after the
    grace period); 200 nodes that join mid-task are not part of it."""
    nodes = sim.node_names("chaos=nodes")
    assert len(nodes) == 30
    image = fresh_image("nodes")
    task_id = _create(chaos_stack, image, "nodes", batch=10)
    pods = wait_until(
        lambda: p if len(p := sim.pods_on(task_id)) >= 10 else None,
        60,
        interval=0.1,
        message="the first batch never got its pods",
    )
    gone, not_ready = sorted(pods)[:2]
    sim.delete_node(gone)
    went_not_ready = datetime.now(UTC)
    sim.set_ready(not_ready, False)
    joined = sim.add_nodes(200, "nodes")
    assert len(sim.node_names("chaos=nodes")) == 30 - 1 + 200

    task = wait_final(chaos_stack, task_id, timeout=180)
    p = task["progress"]
    assert task["status"] == "completed"
    assert (p["totalNodes"], p["completedNodes"], p["failedNodes"]) == (30, 28, 2)
    reasons = {d["nodeName"]: d for d in task["failedNodeDetails"]}
    assert reasons[gone]["reason"] == "NodeGone", reasons
    assert reasons[not_ready]["reason"] == "NodeNotReady", reasons
    reported = datetime.fromisoformat(reasons[not_ready]["timestamp"].replace("Z", "+00:00"))
    assert reported >= went_not_ready.replace(microsecond=0)
    pulls = sim.pulls(image)
    assert max(pulls.values()) == 1
    assert set(pulls) == set(nodes) - {gone, not_ready}
    assert not set(joined) & set(pulls)  # nodes that joined later are not part of the task
    # Clean-up deleted every Job. The pod on the unreachable node stays Terminating, as on a real
    # cluster, until its kubelet is back (kubesim/README.md, node lifecycle); then it goes, and
    # the returning kubelet pulls nothing for it.
    left: dict[str, list[str]] = {}

    def only_the_unreachable_pod_left() -> bool:
        left.update(sim.task_objects(task_id))
        return not left["jobs"] and not set(sim.pods_on(task_id)) - {not_ready}

    wait_until(
        only_the_unreachable_pod_left,
        30,
        interval=0.5,
        message=lambda: sim.describe_task(task_id),
    )
    for pod in sim.pods_on(task_id).values():
        assert pod["metadata"].get("deletionTimestamp"), sim.describe_task(task_id)
    assert len(left["pods"]) <= 1, left
    sim.set_ready(not_ready, True)
    wait_no_objects(sim, task_id)
    assert sim.pulls(image) == pulls


@pytest.mark.slow
def test_cancel_storm(chaos_stack: Stack, sim: Sim) -> None:
    """20 tasks, each cancelled at a seeded random moment: none leaves a Job or Pod, each ends
    cancelled, or completed when it had finished before its cancel."""
    rng = random.Random(77)
    created: list[tuple[float, str, str]] = []
    for i in range(20):
        image = fresh_image(f"storm{i}")
        created.append((time.monotonic(), _create(chaos_stack, image, "storm", batch=5), image))
    plan = sorted((t0 + rng.uniform(0.0, 14.0), task_id) for t0, task_id, _ in created)
    refused: set[str] = set()
    with chaos_stack.client() as ips:
        for at, task_id in plan:
            time.sleep(max(0.0, at - time.monotonic()))
            try:
                ips.cancel(task_id)
            except Conflict:
                refused.add(task_id)  # it had already finished
    for _, task_id, image in created:
        task = wait_final(chaos_stack, task_id, timeout=120)
        expected = {"completed"} if task_id in refused else {"cancelled", "completed"}
        assert task["status"] in expected, (task_id, task["status"], task.get("message"))
        if task["status"] == "completed":
            assert_end_state(sim, task, image=image, completed=40)
        else:
            assert max(sim.pulls(image).values(), default=0) <= 1
            wait_no_objects(sim, task_id, timeout=30)
    statuses = [wait_final(chaos_stack, t, 5)["status"] for _, t, _ in created]
    assert statuses.count("cancelled") >= 5, statuses  # the storm really cancelled tasks
