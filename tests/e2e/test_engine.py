"""The real engine end to end: Temporal dev server, a real worker, kubesim over HTTP.

kubesim runs time-scaled (a 72 MiB pull takes milliseconds), so each test takes seconds.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from activities.jobspec import task_selector
from activities.selection import normalize_image
from common.models import FailureReason, SkipReason, TaskSpec, TaskStatus, TaskView, Toleration
from common.temporal import QUERY_PROGRESS, SearchAttr
from kubesim.testing import SimHandle, start_sim
from tests.e2e.testlib import engine, run_task, sim_fixture, start_task, until
from tests.processes import free_port

pytestmark = pytest.mark.integration

NOT_FOUND = "registry.example.com/ips-test/not-found:1"
PRIVATE = "registry.example.com/ips-test/private:1"
DISTROLESS = "registry.example.com/ips-test/distroless:1"
LARGE = "registry.example.com/ips-test/large:1"
AMD64_ONLY = "registry.example.com/ips-test/amd64-only:1"
TIME_SCALE = 50.0


# One default-scenario cluster of 60 nodes for the module (tasks use distinct images).
sim = sim_fixture(nodes=60, time_scale=TIME_SCALE, seed=7)


def nodes_where(sim: SimHandle, pred: Callable[[dict[str, Any]], bool]) -> list[str]:
    return sorted(n["metadata"]["name"] for n in sim.objects("nodes") if pred(n))


def _ready(n: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", [])
    )


def _has(n: dict[str, Any], images: list[str]) -> bool:
    names = {normalize_image(x) for i in n["status"].get("images", []) for x in i["names"]}
    return all(normalize_image(i) in names for i in images)


async def test_default_scenario_60_nodes_exact_counts(
    dev_env: WorkflowEnvironment, sim: SimHandle
) -> None:
    images = ["nginx:latest", "redis:7"]
    nodes = sim.objects("nodes")
    assert len(nodes) == 60
    not_ready = nodes_where(sim, lambda n: not _ready(n))
    cordoned = nodes_where(sim, lambda n: _ready(n) and n["spec"].get("unschedulable", False))
    tainted = nodes_where(sim, lambda n: n["metadata"]["labels"].get("pool") == "gpu")
    skipped = set(not_ready) | set(cordoned) | set(tainted)
    warm = nodes_where(sim, lambda n: n["metadata"]["name"] not in skipped and _has(n, images))
    assert (len(not_ready), len(cordoned), len(tainted)) == (1, 1, 7)
    assert warm, "the default scenario has nodes with both images already"
    to_pull = sorted(set(nodes_where(sim, lambda n: True)) - skipped - set(warm))

    async with engine(dev_env, sim) as queue:
        handle = await start_task(dev_env.client, queue, TaskSpec(images=images, batch_size=10))
        view = await handle.result()

    p = view.progress
    assert view.status == TaskStatus.COMPLETED, view.message
    assert p.total_nodes == 60 - len(skipped)
    assert (p.completed_nodes, p.failed_nodes) == (len(to_pull), 0)
    assert (p.already_warm_nodes, p.skipped_nodes) == (len(warm), len(skipped))
    assert p.total_batches == -(-len(to_pull) // 10) and p.current_batch == p.total_batches
    assert p.percentage == 100.0
    reasons = {d.node_name: d.reason for d in view.skipped_node_details}
    assert reasons == {
        **{n: SkipReason.TAINTED for n in tainted},
        **{n: SkipReason.NOT_READY for n in not_ready},
        **{n: SkipReason.CORDONED for n in cordoned},
    }
    # Every node that was pulled on now holds both images; warm nodes got no Job at all.
    for name in to_pull:
        held = {normalize_image(i) for i in sim.node_images(name)}
        assert {normalize_image(i) for i in images} <= held, name
    jobs = sim.objects("jobs", label_selector=task_selector(view.task_id))
    jobs_nodes = {j["metadata"]["annotations"]["prewarm.ips.io/node"] for j in jobs}
    assert jobs_nodes == set(to_pull)
    # The list API reads only search attributes: they carry the final counters.
    desc = await handle.describe()
    sa = desc.typed_search_attributes
    assert sa.get(SearchAttr.STATUS.key) == "completed"
    assert sa.get(SearchAttr.COMPLETED_NODES.key) == len(to_pull)
    assert sa.get(SearchAttr.TOTAL_NODES.key) == p.total_nodes
    assert sa.get(SearchAttr.FAILED_NODES.key) == 0
    assert sa.get(SearchAttr.WARM_NODES.key) == len(warm)
    assert sa.get(SearchAttr.SKIPPED_NODES.key) == len(skipped)


async def test_not_found_image_fails_fast(dev_env: WorkflowEnvironment, sim: SimHandle) -> None:
    targets = nodes_where(sim, lambda n: n["metadata"]["name"].startswith("compute") and _ready(n))
    spec = TaskSpec(images=[NOT_FOUND], batch_size=5, node_names=targets[:5], timeout_seconds=600)
    async with engine(dev_env, sim) as queue:
        started = time.monotonic()
        view = await run_task(dev_env.client, queue, spec)
        elapsed = time.monotonic() - started
    assert view.status == TaskStatus.COMPLETED
    assert view.progress.failed_nodes == 5
    assert {d.reason for d in view.failed_node_details} == {FailureReason.IMAGE_NOT_FOUND}
    assert {d.image for d in view.failed_node_details} == {NOT_FOUND}
    assert all("not found" in d.message.lower() for d in view.failed_node_details)
    assert elapsed < 60, "a not-found image must not wait out timeoutSeconds (600 s)"
    # Failed Jobs are deleted at once, so the kubelet stops its back-off loop.
    await until(lambda: not sim.objects("jobs", label_selector=task_selector(view.task_id)))


async def test_image_without_the_node_platform_fails_fast_as_no_matching_platform(
    dev_env: WorkflowEnvironment, sim: SimHandle
) -> None:
    """No preflight (the worker cannot reach registry.example.com): the arm64 nodes pull the
    amd64-only image by tag and containerd answers "no match for platform in manifest"."""

    def usable(n: dict[str, Any], pool: str) -> bool:
        return (
            n["metadata"]["labels"].get("pool") == pool
            and _ready(n)
            and (not n["spec"].get("unschedulable", False))
        )

    arm = nodes_where(sim, lambda n: usable(n, "general"))
    amd = nodes_where(sim, lambda n: usable(n, "compute"))
    targets = arm[-3:] + amd[5:7]
    spec = TaskSpec(images=[AMD64_ONLY], batch_size=5, node_names=targets, timeout_seconds=600)
    async with engine(dev_env, sim) as queue:
        started = time.monotonic()
        view = await run_task(dev_env.client, queue, spec)
        elapsed = time.monotonic() - started
    assert view.status == TaskStatus.COMPLETED, view.message
    assert any(w.startswith(f"preflight skipped for {AMD64_ONLY}") for w in view.warnings)
    assert (view.progress.completed_nodes, view.progress.failed_nodes) == (2, 3)
    assert {d.node_name for d in view.failed_node_details} == set(arm[-3:])
    assert {d.reason for d in view.failed_node_details} == {FailureReason.NO_MATCHING_PLATFORM}
    assert {d.image for d in view.failed_node_details} == {AMD64_ONLY}
    assert all("no match for platform in manifest" in d.message for d in view.failed_node_details)
    assert elapsed < 60, "an image without the node's platform must not wait out timeoutSeconds"
    await until(lambda: not sim.objects("jobs", label_selector=task_selector(view.task_id)))


async def test_private_image_needs_its_pull_secret(
    dev_env: WorkflowEnvironment, sim: SimHandle
) -> None:
    targets = nodes_where(sim, lambda n: n["metadata"]["name"].startswith("general") and _ready(n))
    without = TaskSpec(images=[PRIVATE], batch_size=3, node_names=targets[:3])
    with_secret = TaskSpec(
        images=[PRIVATE], batch_size=3, node_names=targets[3:6], image_pull_secrets=["regcred"]
    )
    async with engine(dev_env, sim) as queue:
        denied = await run_task(dev_env.client, queue, without)
        allowed = await run_task(dev_env.client, queue, with_secret)
    assert denied.progress.failed_nodes == 3
    assert {d.reason for d in denied.failed_node_details} == {FailureReason.UNAUTHORIZED}
    assert (allowed.status, allowed.progress.completed_nodes) == (TaskStatus.COMPLETED, 3)
    for name in targets[3:6]:
        assert sim.pull_counts().get((name, PRIVATE)) == 1


async def test_image_without_a_shell_succeeds(dev_env: WorkflowEnvironment, sim: SimHandle) -> None:
    targets = nodes_where(sim, lambda n: n["metadata"]["name"].startswith("compute") and _ready(n))
    spec = TaskSpec(images=[DISTROLESS], batch_size=4, node_names=targets[-4:])
    async with engine(dev_env, sim) as queue:
        view = await run_task(dev_env.client, queue, spec)
    assert (view.status, view.progress.completed_nodes, view.progress.failed_nodes) == (
        TaskStatus.COMPLETED,
        4,
        0,
    )


async def test_tainted_pool_needs_tolerations(dev_env: WorkflowEnvironment, sim: SimHandle) -> None:
    image = "registry.example.com/ips-test/small:1"
    gpu = {"pool": "gpu"}
    async with engine(dev_env, sim) as queue:
        refused = await (
            await start_task(
                dev_env.client, queue, TaskSpec(images=[image], batch_size=4, node_selector=gpu)
            )
        ).result()
        tolerated = await (
            await start_task(
                dev_env.client,
                queue,
                TaskSpec(
                    images=[image],
                    batch_size=4,
                    node_selector=gpu,
                    tolerations=[
                        Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
                    ],
                ),
            )
        ).result()
    assert refused.status == TaskStatus.FAILED
    assert refused.message is not None and "7 Tainted" in refused.message
    assert refused.progress.skipped_nodes == 7
    assert (tolerated.status, tolerated.progress.completed_nodes) == (TaskStatus.COMPLETED, 7)
    gpu_nodes = nodes_where(sim, lambda n: n["metadata"]["labels"].get("pool") == "gpu")
    assert all(sim.pull_counts().get((n, image)) == 1 for n in gpu_nodes)


async def test_cancel_mid_batch_leaves_no_jobs(
    dev_env: WorkflowEnvironment, sim: SimHandle
) -> None:
    spec = TaskSpec(images=[LARGE], batch_size=5, timeout_seconds=600)
    async with engine(dev_env, sim) as queue:
        handle = await start_task(dev_env.client, queue, spec)
        selector = task_selector(handle.id)
        await until(lambda: len(sim.objects("jobs", label_selector=selector)) >= 3)
        await handle.cancel()
        view = await handle.result()
        await until(
            lambda: (
                not sim.objects("jobs", label_selector=selector)
                and not sim.objects("pods", label_selector=selector)
            ),
            within=30,
        )
    assert view.status == TaskStatus.CANCELLED
    assert view.progress.current_batch == 1
    assert view.progress.completed_nodes + view.progress.failed_nodes < 5
    desc = await handle.describe()
    assert desc.typed_search_attributes.get(SearchAttr.STATUS.key) == "cancelled"


def _worker_process(
    sim: SimHandle, address: str, queue: str, log: Path, metrics_port: int = 0
) -> subprocess.Popen[bytes]:
    ips = shutil.which("ips", path=str(Path(sys.executable).parent)) or "ips"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_TASK_QUEUE": queue,
        "KUBECONFIG": str(sim.kubeconfig_path),
        "K8S_QPS": "500",
        "K8S_BURST": "500",
        "METRICS_PORT": str(metrics_port),
        "TEMPORAL_METRICS_PORT": "0",
        "IPS_LOG_FORMAT": "console",
    }
    return subprocess.Popen(
        [ips, "worker"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


async def test_worker_sigkill_mid_batch_then_restart_pulls_each_node_once(
    dev_env: WorkflowEnvironment, dev_address: str, sim: SimHandle, tmp_path: Path
) -> None:
    image = LARGE
    targets = nodes_where(
        sim,
        lambda n: (
            n["metadata"]["name"].startswith("general")
            and _ready(n)
            and not n["spec"].get("unschedulable", False)
        ),
    )[:10]
    spec = TaskSpec(images=[image], batch_size=5, node_names=targets)
    queue = f"engine-kill-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    proc = _worker_process(sim, dev_address, queue, log)
    try:
        handle = await start_task(dev_env.client, queue, spec)
        selector = task_selector(handle.id)
        # Mid-batch: the first batch's Jobs exist and none has finished yet.
        await until(lambda: len(sim.objects("jobs", label_selector=selector)) >= 5, 60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        metrics_port = free_port()
        proc = _worker_process(sim, dev_address, queue, log, metrics_port)
        view = await asyncio.wait_for(handle.result(), 120)
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        # SIGTERM is a graceful stop: the worker drains and exits 0.
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert view.status == TaskStatus.COMPLETED, log.read_text()[-3000:]
    assert view.progress.completed_nodes == 10
    counts = sim.pull_counts()
    assert {n: counts.get((n, image)) for n in targets} == {n: 1 for n in targets}
    # The restarted worker's metrics: requests by verb/resource/code, outcomes, never a node.
    assert re.search(r'ips_k8s_requests_total\{code="20\d",resource="pods",verb="list"\}', metrics)
    assert re.search(r'ips_nodes_processed_total\{result="completed"\} [1-9]', metrics)
    assert not any(n in metrics for n in targets)


async def test_node_deleted_or_not_ready_mid_task(dev_env: WorkflowEnvironment) -> None:
    """A node deleted mid-pull fails NodeGone; one that goes NotReady fails NodeNotReady;
    neither waits out timeoutSeconds."""
    with start_sim(nodes=8, time_scale=20, seed=3) as small:
        targets = nodes_where(
            small,
            lambda n: (
                n["metadata"]["labels"].get("pool") == "compute"
                and _ready(n)
                and not n["spec"].get("unschedulable", False)
            ),
        )[:3]
        spec = TaskSpec(images=[LARGE], batch_size=3, node_names=targets, timeout_seconds=600)
        async with engine(dev_env, small) as queue:
            handle = await start_task(dev_env.client, queue, spec)
            selector = task_selector(handle.id)
            await until(lambda: len(small.objects("pods", label_selector=selector)) == 3)
            small.delete_node(targets[0])
            small.set_node_ready(targets[1], False)
            started = time.monotonic()
            view = await asyncio.wait_for(handle.result(), 90)
            elapsed = time.monotonic() - started
    reasons = {d.node_name: d.reason for d in view.failed_node_details}
    assert reasons == {
        targets[0]: FailureReason.NODE_GONE,
        targets[1]: FailureReason.NODE_NOT_READY,
    }
    assert view.progress.completed_nodes == 1
    assert elapsed < 60


async def test_flaky_api_429_500_and_expired_watches(dev_env: WorkflowEnvironment) -> None:
    """429 with Retry-After, 500s and watch drops with 410 Gone: the task still ends exact,
    every node pulled once, and the 429s are counted as honoured."""
    from common.observability import K8S_RATE_LIMITED

    with start_sim(nodes=20, time_scale=20, seed=5) as small:
        targets = nodes_where(
            small, lambda n: _ready(n) and not n["spec"].get("unschedulable", False)
            and n["metadata"]["labels"].get("pool") != "gpu",
        )  # fmt: skip
        image = "registry.example.com/ips-test/small:1"
        limited_before = K8S_RATE_LIMITED._value.get()
        small.set_faults(
            http429={"create": 0.3},
            http500={"create": 0.1, "list": 0.1},
            retry_after_seconds=1,
            watch_disconnect_seconds=1.0,
        )
        small.set_faults(expire_next_watch=True)
        spec = TaskSpec(images=[image], batch_size=5, node_names=targets)
        async with engine(dev_env, small) as queue:
            view = await asyncio.wait_for(run_task(dev_env.client, queue, spec), 120)
        counts = small.pull_counts()
    assert view.status == TaskStatus.COMPLETED, view.message
    assert (view.progress.completed_nodes, view.progress.failed_nodes) == (len(targets), 0), (
        view.failed_node_details
    )
    assert {n: counts.get((n, image)) for n in targets} == {n: 1 for n in targets}
    assert K8S_RATE_LIMITED._value.get() > limited_before


async def test_missing_namespace_fails_with_a_clear_message(
    dev_env: WorkflowEnvironment, sim: SimHandle
) -> None:
    def creates() -> int:
        return sum(sim.stats()["requests"].get("create", {}).get("jobs", {}).values())

    # An image no other test pulls: on warm nodes no Job would be created, and nothing would fail.
    spec = TaskSpec(images=["registry.example.com/team/namespace-check:1"], batch_size=5)
    before = creates()
    async with engine(dev_env, sim, k8s_namespace="no-such-ns") as queue:
        view = await asyncio.wait_for(run_task(dev_env.client, queue, spec), 60)
    assert view.status == TaskStatus.FAILED
    assert view.message == (
        "prewarming a batch failed: namespace 'no-such-ns' (K8S_NAMESPACE) does not exist"
    )
    # Failed on the first create: no retries against a namespace that is not there.
    assert 1 <= creates() - before <= spec.batch_size


async def test_rolling_straggler_holds_one_slot_not_a_batch(dev_env: WorkflowEnvironment) -> None:
    """Rolling, batchSize 2: while the one slow node (sorted first) is still pulling, the five
    fast nodes all finish through the other slot. Batch order would wait for it first."""
    image = "registry.example.com/rolling/app:1"
    helper = "busybox:1.37.0-musl"
    scen = {
        "defaults": {"pullOverheadSeconds": 0.0, "pullJitter": 0.0, "containerRunSeconds": 0.0},
        "nodeGroups": [
            {"name": "a-slow", "count": 1, "labels": {"pool": "roll"}, "pullBandwidth": "1MB/s",
             "images": [{"name": helper}]},
            {"name": "b-fast", "count": 5, "labels": {"pool": "roll"},
             "pullBandwidth": "1000MB/s", "images": [{"name": helper}]},
        ],
        "images": [{"name": helper, "size": "1MiB"}, {"name": image, "size": "100MB"}],
    }  # fmt: skip
    with start_sim(scenario=scen, time_scale=20, seed=1) as small:
        spec = TaskSpec(images=[image], batch_size=2, strategy="rolling",
                        node_selector={"pool": "roll"})  # fmt: skip
        async with engine(dev_env, small) as queue:
            handle = await start_task(dev_env.client, queue, spec)
            deadline = time.monotonic() + 30
            while True:
                mid = await handle.query(QUERY_PROGRESS, result_type=TaskView)
                if mid.progress.completed_nodes >= 5 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            view = await asyncio.wait_for(handle.result(), 60)
    assert mid.status == TaskStatus.RUNNING, "the slow node (100 MB at 1 MB/s) is still pulling"
    assert mid.progress.completed_nodes == 5
    assert (view.status, view.progress.completed_nodes) == (TaskStatus.COMPLETED, 6)
