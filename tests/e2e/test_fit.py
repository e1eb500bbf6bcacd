"""The real engine on kubesim: pods pinned by node name, digest-pinned images counted warm, and
image tags that look like HTTP statuses (issue 12, items 6, 7 and 12).

One small cluster for the module: group `warm` holds the digest-pinned image (kubesim lists it
as containerd does, `name@sha256:...` only), group `cold` does not.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from temporalio.testing import WorkflowEnvironment

from activities.jobspec import task_selector
from common.models import FailureReason, TaskSpec, TaskStatus
from kubesim.testing import SimHandle
from tests.e2e.testlib import engine, run_task, sim_fixture

pytestmark = pytest.mark.integration

HELPER = "busybox:1.37.0-musl"
PINNED = "registry.example.com/ips-test/pinned:1.4@sha256:" + "4f" * 32
NOT_FOUND_401 = "registry.example.com/ips-test/app:401"
PRIVATE_429 = "registry.example.com/ips-test/private:429"
SCENARIO: dict[str, Any] = {
    "defaults": {"pullOverheadSeconds": 0.0, "pullJitter": 0.0, "containerRunSeconds": 0.0},
    "nodeGroups": [
        {"name": "warm", "count": 2, "labels": {"pool": "fit"},
         "images": [{"name": HELPER}, {"name": PINNED}]},
        {"name": "cold", "count": 4, "labels": {"pool": "fit"}, "images": [{"name": HELPER}]},
    ],
    "images": [
        {"name": HELPER, "size": "1MiB"},
        {"name": PINNED, "size": "10MB"},
        {"name": NOT_FOUND_401, "notFound": True},
        {"name": PRIVATE_429, "privateSecret": "regcred"},
    ],
}  # fmt: skip


sim = sim_fixture(scenario=SCENARIO, time_scale=20, seed=11)


def group(sim: SimHandle, prefix: str) -> list[str]:
    return sorted(
        n["metadata"]["name"]
        for n in sim.objects("nodes")
        if n["metadata"]["name"].startswith(prefix)
    )


async def test_pods_are_pinned_by_node_name_not_by_a_shared_hostname_label(
    dev_env: WorkflowEnvironment, sim: SimHandle
) -> None:
    """Two nodes whose kubernetes.io/hostname labels are equal: each still gets its own pod."""
    cold = group(sim, "cold")[:2]
    api = k8s_config.new_client_from_config(config_file=str(sim.kubeconfig_path))
    try:
        for name in cold:
            k8s.CoreV1Api(api).patch_node(
                name, {"metadata": {"labels": {"kubernetes.io/hostname": "shared-host"}}}
            )
    finally:
        api.close()
    image = "registry.example.com/ips-test/pin-check:1"
    async with engine(dev_env, sim) as queue:
        view = await run_task(
            dev_env.client, queue, TaskSpec(images=[image], batch_size=2, node_names=cold)
        )
    assert (view.status, view.progress.completed_nodes) == (TaskStatus.COMPLETED, 2), (
        view.failed_node_details
    )
    assert {n: sim.pull_counts().get((n, image)) for n in cold} == {n: 1 for n in cold}
    pods = sim.objects("pods", label_selector=task_selector(view.task_id))
    placed = {
        p["metadata"]["annotations"]["prewarm.ips.io/node"]: p["spec"]["nodeName"] for p in pods
    }
    assert placed == {n: n for n in cold}
    for job in sim.objects("jobs", label_selector=task_selector(view.task_id)):
        node = job["metadata"]["annotations"]["prewarm.ips.io/node"]
        terms = job["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        assert terms == [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
        ]


async def test_nodes_holding_a_digest_pinned_image_count_as_warm(
    dev_env: WorkflowEnvironment, sim: SimHandle
) -> None:
    warm, cold = group(sim, "warm"), group(sim, "cold")
    held = {n: sim.node_images(n) for n in warm}
    assert all(not any(":1.4" in ref for ref in refs) for refs in held.values()), held
    async with engine(dev_env, sim) as queue:
        view = await run_task(
            dev_env.client,
            queue,
            TaskSpec(images=[PINNED], batch_size=4, node_selector={"pool": "fit"}),
        )
    p = view.progress
    assert view.status == TaskStatus.COMPLETED, view.message
    assert (p.already_warm_nodes, p.completed_nodes, p.failed_nodes) == (len(warm), len(cold), 0)
    assert all(sim.pull_counts().get((n, PINNED)) is None for n in warm)


async def test_tags_that_look_like_http_statuses_are_not_misread(
    dev_env: WorkflowEnvironment, sim: SimHandle
) -> None:
    """A missing image tagged :401 is ImageNotFound, a private one tagged :429 Unauthorized."""
    cold = group(sim, "cold")
    async with engine(dev_env, sim) as queue:
        missing = await run_task(
            dev_env.client,
            queue,
            TaskSpec(images=[NOT_FOUND_401], batch_size=2, node_names=cold[:2]),
        )
        private = await run_task(
            dev_env.client, queue, TaskSpec(images=[PRIVATE_429], batch_size=2, node_names=cold[2:])
        )
    assert [(d.reason, d.image) for d in missing.failed_node_details] == [
        (FailureReason.IMAGE_NOT_FOUND, NOT_FOUND_401)
    ] * 2
    assert [(d.reason, d.image) for d in private.failed_node_details] == [
        (FailureReason.UNAUTHORIZED, PRIVATE_429)
    ] * 2
