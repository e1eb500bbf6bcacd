"""The registry-aware engine end to end (issue 16): a real registry (regserver.py), the Temporal
dev server, a real worker and kubesim, whose kubelet pulls from the same registry.

- a typo in one of three images fails the task with the registry's own message, and no Job
  exists in the cluster;
- a multi-arch image and an amd64-only one, with arm64 nodes: the arm64 nodes are skipped
  `NoMatchingPlatform` before any Job, and the Jobs pull `name@sha256:...` (the digests the
  registry serves); the view lists them in `resolvedImages`; a second task finds every node
  warm by digest;
- a private image on a token-auth registry: refused without credentials (`Unauthorized`, no
  Job), resolved and pinned with the task's pull secret (read from the cluster by the worker);
- an unreachable registry: the task pulls without preflight (by tag) and says so;
- `pinDigests: false`: the Jobs pull the tags;
- nodes far too small for the images are skipped `InsufficientDisk`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.jobspec import task_selector
from common.engine import PrewarmInput
from common.models import SkipReason, TaskSpec, TaskStatus, TaskView
from common.preflight import ACTIVITY_RESOLVE_IMAGES
from common.settings import Settings
from common.starting import start_prewarm_workflow
from kubesim.testing import SimHandle, start_sim
from tests.activities.registry.conftest import PASSWORD, USER, Served
from tests.activities.registry.pullsecrets import create_pull_secret
from tests.waiting import async_wait_until
from tests.workflows.conftest import task_id
from worker.main import build_worker

pytestmark = pytest.mark.integration

AMD, ARM = 6, 4
SCENARIO: dict[str, Any] = {
    "defaults": {"imageSize": "10MiB", "pullOverheadSeconds": 0.2, "containerRunSeconds": 0.2},
    "nodeGroups": [
        {"name": "amd", "count": AMD, "labels": {"pool": "reg"}, "arch": "amd64"},
        {"name": "arm", "count": ARM, "labels": {"pool": "reg"}, "arch": "arm64"},
        # 1 KiB of ephemeral storage: far too small for any image (InsufficientDisk).
        {
            "name": "tiny",
            "count": 2,
            "labels": {"pool": "tiny"},
            "arch": "amd64",
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "1Ki"},
        },
    ],
}


@pytest.fixture(scope="module")
def sim(plain_registry: Served) -> Iterator[SimHandle]:
    """kubesim's kubelet resolves the registry's images against it for real (registries:), so
    the digests in status.images are the registry's."""
    scenario = {**SCENARIO, "registries": [{"url": plain_registry.registry.url}]}
    with start_sim(scenario=scenario, time_scale=20, seed=5) as handle:
        yield handle


@asynccontextmanager
async def engine(env: WorkflowEnvironment, sim: SimHandle) -> AsyncIterator[str]:
    settings = Settings(
        kubeconfig=sim.kubeconfig_path,
        k8s_qps=500.0,
        k8s_burst=500,
        metrics_port=0,
        temporal_metrics_port=0,
        engine_time_scale=20,
    )
    queue = f"registry-engine-{uuid.uuid4().hex[:8]}"
    async with await build_worker(env.client, settings, task_queue=queue):
        yield queue


async def run_task(env: WorkflowEnvironment, queue: str, spec: TaskSpec) -> TaskView:
    handle: WorkflowHandle[Any, TaskView] = await start_prewarm_workflow(
        env.client,
        queue,
        PrewarmInput(task_id=task_id(), spec=spec, created_at=datetime.now(UTC)),
    )
    return await handle.result()


def jobs_of(sim: SimHandle, tid: str) -> list[dict[str, Any]]:
    return sim.objects("jobs", namespace="default", label_selector=task_selector(tid))


def pulled(job: dict[str, Any]) -> list[str]:
    return [c["image"] for c in job["spec"]["template"]["spec"]["containers"]]


async def test_a_typo_in_one_of_three_images_fails_with_no_job(
    dev_env: WorkflowEnvironment, sim: SimHandle, plain_registry: Served
) -> None:
    images = [
        plain_registry.ref("single"),
        plain_registry.ref("singel"),
        plain_registry.ref("multi"),
    ]
    creates_before = sum(sim.stats()["requests"].get("create", {}).get("jobs", {}).values())
    async with engine(dev_env, sim) as queue:
        handle = await start_prewarm_workflow(
            dev_env.client,
            queue,
            PrewarmInput(task_id=task_id(), spec=TaskSpec(images=images, batch_size=5),
                         created_at=datetime.now(UTC)),
        )  # fmt: skip
        view: TaskView = await handle.result()
    assert view.status == TaskStatus.FAILED
    assert view.message is not None
    assert "preflight refused 1 of 3 images, no Job was created" in view.message
    assert f"{plain_registry.ref('singel')}: HTTP 404: MANIFEST_UNKNOWN: manifest unknown" in (
        view.message
    )
    assert view.progress.total_nodes == 0  # the nodes were never listed
    assert jobs_of(sim, view.task_id) == []
    creates = sum(sim.stats()["requests"].get("create", {}).get("jobs", {}).values())
    assert creates == creates_before
    # The history: the preflight, and no other activity (no listing, no batch, no clean-up).
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled == [ACTIVITY_RESOLVE_IMAGES]


async def test_platform_skips_and_pinned_digests_then_warm_by_digest(
    dev_env: WorkflowEnvironment, sim: SimHandle, plain_registry: Served
) -> None:
    multi, amd_only = plain_registry.ref("multi"), plain_registry.ref("amd64only")
    spec = TaskSpec(images=[multi, amd_only], batch_size=4, node_selector={"pool": "reg"})
    async with engine(dev_env, sim) as queue:
        view = await run_task(dev_env, queue, spec)
        assert view.status == TaskStatus.COMPLETED, view.message
        p = view.progress
        assert (p.total_nodes, p.completed_nodes, p.failed_nodes, p.skipped_nodes) == (
            AMD, AMD, 0, ARM)  # fmt: skip
        assert {s.reason for s in view.skipped_node_details} == {SkipReason.NO_MATCHING_PLATFORM}
        arm_nodes = {n["metadata"]["name"] for n in sim.objects("nodes")
                     if n["metadata"]["labels"]["kubernetes.io/arch"] == "arm64"}  # fmt: skip
        assert {s.node_name for s in view.skipped_node_details} == arm_nodes
        assert all("offers linux/amd64, not this node's linux/arm64" in s.message
                   for s in view.skipped_node_details)  # fmt: skip
        digests = {
            multi: plain_registry.images["multi"].digest,
            amd_only: plain_registry.images["amd64only"].digest,
        }
        assert {(r.image, r.digest) for r in view.resolved_images} == set(digests.items())
        pinned = [f"{ref.rsplit(':', 1)[0]}@{digests[ref]}" for ref in (multi, amd_only)]
        jobs = jobs_of(sim, view.task_id)
        assert len(jobs) == AMD  # no Job on an arm64 node
        assert all(pulled(job) == pinned for job in jobs)
        assert view.warnings == []
        assert view.progress.in_flight_window == 4  # no 429: the window stays at its ceiling

        # The nodes now list the images by digest: a second task finds them all warm.
        def listed() -> bool:
            amd = [
                n
                for n in sim.objects("nodes")
                if n["metadata"]["labels"].get("pool") == "reg"
                and n["metadata"]["name"] not in arm_nodes
            ]
            return all(
                {x for i in n["status"].get("images", []) for x in i["names"]} >= set(pinned)
                for n in amd
            )

        await async_wait_until(listed, 30, message="node status never listed the pulled digests")
        again = await run_task(dev_env, queue, spec)
        assert again.status == TaskStatus.COMPLETED, again.message
        assert (again.progress.already_warm_nodes, again.progress.completed_nodes) == (AMD, 0)
        assert jobs_of(sim, again.task_id) == []


async def test_an_unreachable_registry_pulls_by_tag_with_a_warning(
    dev_env: WorkflowEnvironment, sim: SimHandle, plain_registry: Served
) -> None:
    down = "127.0.0.1:9/team/app:1"  # the discard port: nothing listens
    spec = TaskSpec(images=[plain_registry.ref("single"), down], batch_size=10,
                    node_selector={"pool": "reg"}, node_names=None)  # fmt: skip
    async with engine(dev_env, sim) as queue:
        view = await run_task(dev_env, queue, spec)
    assert view.status == TaskStatus.COMPLETED, view.message
    assert len(view.warnings) == 1 and view.warnings[0].startswith(f"preflight skipped for {down}")
    single = plain_registry.ref("single")
    assert [r.image for r in view.resolved_images] == [single]
    # amd64-only single image: the arm64 nodes are skipped; the unreachable one is pulled by tag.
    assert view.progress.skipped_nodes == ARM
    pinned = f"{single.rsplit(':', 1)[0]}@{plain_registry.images['single'].digest}"
    assert all(pulled(job) == [pinned, down] for job in jobs_of(sim, view.task_id))


async def test_pin_digests_false_pulls_the_tags(
    dev_env: WorkflowEnvironment, sim: SimHandle, plain_registry: Served
) -> None:
    multi = plain_registry.ref(
        "multi",
    )
    spec = TaskSpec(images=[multi], batch_size=10, node_selector={"pool": "reg"},
                    pin_digests=False, image_pull_policy="Always")  # fmt: skip
    async with engine(dev_env, sim) as queue:
        view = await run_task(dev_env, queue, spec)
    assert view.status == TaskStatus.COMPLETED, view.message
    assert view.progress.completed_nodes == AMD + ARM  # multi-arch: every node
    assert [r.digest for r in view.resolved_images] == [plain_registry.images["multi"].digest]
    assert all(pulled(job) == [multi] for job in jobs_of(sim, view.task_id))


async def test_a_private_image_is_refused_without_credentials_and_pinned_with_them(
    dev_env: WorkflowEnvironment, sim: SimHandle, token_registry: Served
) -> None:
    private = f"{token_registry.registry.host}/private/single:1"
    create_pull_secret(sim, "regcred-e2e", token_registry.registry.host, USER, PASSWORD)
    base = {"images": [private], "batch_size": 10, "node_selector": {"pool": "reg"}}
    async with engine(dev_env, sim) as queue:
        refused = await run_task(dev_env, queue, TaskSpec(**base))
        allowed = await run_task(
            dev_env, queue, TaskSpec(**base, image_pull_secrets=["regcred-e2e"])
        )
    assert refused.status == TaskStatus.FAILED
    assert refused.message is not None
    assert refused.message.startswith("preflight refused 1 of 1 images, no Job was created: ")
    assert "unauthorized: " in refused.message and "UNAUTHORIZED" in refused.message
    assert jobs_of(sim, refused.task_id) == []
    assert allowed.status == TaskStatus.COMPLETED, allowed.message
    digest = token_registry.images["single"].digest
    assert [(r.image, r.digest) for r in allowed.resolved_images] == [(private, digest)]
    pinned = f"{token_registry.registry.host}/private/single@{digest}"
    jobs = jobs_of(sim, allowed.task_id)
    assert jobs and all(pulled(job) == [pinned] for job in jobs)


async def test_nodes_too_small_for_the_images_are_skipped_insufficient_disk(
    dev_env: WorkflowEnvironment, sim: SimHandle, plain_registry: Served
) -> None:
    spec = TaskSpec(
        images=[plain_registry.ref("multi")], batch_size=2, node_selector={"pool": "tiny"}
    )
    async with engine(dev_env, sim) as queue:
        view = await run_task(dev_env, queue, spec)
    assert view.status == TaskStatus.FAILED
    assert view.message == (
        "none of the 2 matching nodes can be prewarmed: all were skipped (2 InsufficientDisk)"
    )
    assert {s.reason for s in view.skipped_node_details} == {SkipReason.INSUFFICIENT_DISK}
    assert all("allocatable ephemeral-storage 1Ki (1024 bytes)" in s.message
               for s in view.skipped_node_details)  # fmt: skip
    assert jobs_of(sim, view.task_id) == []
