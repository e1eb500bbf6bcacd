"""Kubelet and containerd strings and timings that vary between clusters (scenario switches)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client, config

from kubesim.testing import SimHandle, start_sim
from tests.kubesim.conftest import job_body, job_done, job_pods, wait_for

pytestmark = pytest.mark.integration

AMD64_ONLY = "registry.example.com/amd64-only:1"
MISSING = "docker.io/acme/missing:1"
RESERVED = "registry.example.com/reserved:1"
SLOWSTATUS = "registry.example.com/fresh:1"


def scenario(**defaults: Any) -> dict[str, Any]:
    return {
        "nodeGroups": [
            {"name": "x86", "count": 2, "arch": "amd64"},
            {"name": "arm", "count": 2, "arch": "arm64"},
        ],
        "images": [
            {"name": AMD64_ONLY, "platforms": ["amd64"]},
            {"name": MISSING, "notFound": True},
            {"name": RESERVED, "createFailures": 2},
        ],
        "defaults": {"tokenAuthRegistries": ["docker.io"], **defaults},
    }


def _batch(sim: SimHandle) -> client.BatchV1Api:
    return client.BatchV1Api(config.new_client_from_config(config_file=str(sim.kubeconfig_path)))


def _waiting_when(sim: SimHandle, job: str, reason: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        pods = job_pods(sim, job)
        if not pods:
            return None
        for cs in pods[0]["status"].get("containerStatuses", []):
            w = cs["state"].get("waiting") or {}
            if w.get("reason") == reason:
                return w
        return None

    return wait_for(check, what=f"{reason} on {job}")


@pytest.mark.parametrize(
    ("version", "suffix"),
    [("v1.31.9", False), ("v1.30.0", False), ("v1.32.4", True), ("v1.33.2", True)],
)
def test_backoff_message_by_kubelet_version(version: str, suffix: bool) -> None:
    with start_sim(nodes=None, scenario=scenario(kubeletVersion=version), time_scale=100) as sim:
        _batch(sim).create_namespaced_job(
            "default", job_body("nf", [{"name": "c", "image": MISSING}], node="x86-1")
        )
        w = _waiting_when(sim, "nf", "ImagePullBackOff")
        base = f'Back-off pulling image "{MISSING}"'
        if suffix:
            assert w["message"].startswith(base + ": ErrImagePull: rpc error:")
        else:
            assert w["message"] == base


def test_missing_repo_on_token_auth_registry_is_insufficient_scope() -> None:
    with start_sim(nodes=None, scenario=scenario(), time_scale=100) as sim:
        _batch(sim).create_namespaced_job(
            "default", job_body("nf", [{"name": "c", "image": MISSING}], node="x86-1")
        )
        w = _waiting_when(sim, "nf", "ErrImagePull")
        assert w["message"] == (
            "rpc error: code = Unknown desc = failed to pull and unpack image "
            f'"{MISSING}": failed to resolve reference "{MISSING}": pull access denied, '
            "repository does not exist or may require authorization: server message: "
            "insufficient_scope: authorization failed"
        )


def test_image_without_the_node_platform() -> None:
    with start_sim(nodes=None, scenario=scenario(), time_scale=100) as sim:
        batch = _batch(sim)
        batch.create_namespaced_job(
            "default", job_body("arm", [{"name": "c", "image": AMD64_ONLY}], node="arm-1")
        )
        batch.create_namespaced_job(
            "default", job_body("x86", [{"name": "c", "image": AMD64_ONLY}], node="x86-1")
        )
        w = _waiting_when(sim, "arm", "ErrImagePull")
        assert w["message"] == (
            "rpc error: code = NotFound desc = failed to pull and unpack image "
            f'"{AMD64_ONLY}": no match for platform in manifest: not found'
        )
        wait_for(lambda: job_done(sim, "x86"), what="the amd64 node pulls it")


def test_create_container_error_is_retried() -> None:
    with start_sim(nodes=None, scenario=scenario(), time_scale=100) as sim:
        _batch(sim).create_namespaced_job(
            "default", job_body("cc", [{"name": "c", "image": RESERVED}], node="x86-1")
        )
        w = _waiting_when(sim, "cc", "CreateContainerError")
        assert w["message"].startswith('failed to reserve container name "c_cc-')
        job = wait_for(lambda: job_done(sim, "cc"), what="success after the retries")
        assert job["status"]["succeeded"] == 1
        failed = [
            e
            for e in sim.objects("events", "default")
            if e["reason"] == "Failed" and "failed to reserve container name" in e["message"]
        ]
        # The same message each time (attempt 0: it never started): one Event, count 2.
        assert sum(e["count"] for e in failed) == 2


def test_status_images_wait_for_the_image_cache_and_the_node_status_tick() -> None:
    sc = scenario(imageCacheRefreshSeconds=100000, nodeStatusUpdateSeconds=10)
    with start_sim(nodes=None, scenario=sc, time_scale=100) as sim:
        _batch(sim).create_namespaced_job(
            "default", job_body("st", [{"name": "c", "image": SLOWSTATUS}], node="x86-1")
        )
        wait_for(lambda: job_done(sim, "st"), what="the pull and run")
        node = next(n for n in sim.objects("nodes") if n["metadata"]["name"] == "x86-1")
        names = [n for i in node["status"].get("images", []) for n in i["names"]]
        assert f"{SLOWSTATUS}" not in names  # pulled, but the kubelet has not reported it yet
        assert ("x86-1", SLOWSTATUS) in sim.pull_counts()
    sc = scenario(imageCacheRefreshSeconds=30, nodeStatusUpdateSeconds=10)
    with start_sim(nodes=None, scenario=sc, time_scale=100) as sim:
        _batch(sim).create_namespaced_job(
            "default", job_body("st", [{"name": "c", "image": SLOWSTATUS}], node="x86-1")
        )

        def reported() -> bool:
            node = next(n for n in sim.objects("nodes") if n["metadata"]["name"] == "x86-1")
            return SLOWSTATUS in [n for i in node["status"].get("images", []) for n in i["names"]]

        wait_for(reported, what="status.images within the cache period + the status tick")
