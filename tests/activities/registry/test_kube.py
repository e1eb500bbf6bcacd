"""The preflight activity with its pull secrets read from a cluster (kubesim) through the
worker's Kubernetes client, against the TLS + htpasswd registry."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from temporalio.testing import ActivityEnvironment

from activities.kube import Kube
from activities.registry import RegistryActivities, kube_secret_reader
from common.preflight import PreflightError, ResolveImagesInput
from common.settings import Settings
from kubesim.testing import SimHandle, start_sim
from tests.activities.registry.conftest import PASSWORD, USER, Served

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with start_sim(nodes=1, time_scale=20) as handle:
        yield handle


def create_pull_secret(sim: SimHandle, name: str, host: str, password: str) -> None:
    auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
    cfg = json.dumps({"auths": {host: {"auth": auth}}}).encode()
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(str(sim.kubeconfig_path)))
    api.create_namespaced_secret(
        "default",
        k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name=name),
            type="kubernetes.io/dockerconfigjson",
            data={".dockerconfigjson": base64.b64encode(cfg).decode()},
        ),
    )


async def test_pull_secrets_from_the_cluster(
    sim: SimHandle, tls_registry: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = tls_registry.registry.host
    create_pull_secret(sim, "preflight-wrong", host, "not-the-password")
    create_pull_secret(sim, "preflight-good", host, PASSWORD)
    assert tls_registry.registry.ca is not None
    settings = Settings(
        kubeconfig=sim.kubeconfig_path,
        k8s_namespace="default",
        registry_ca_file=tls_registry.registry.ca.cert,
    )
    kube = Kube(settings)
    try:
        acts = RegistryActivities(settings, kube_secret_reader(kube))
        env = ActivityEnvironment()
        # every secret that names the registry is tried in turn, as the kubelet does...
        inp = ResolveImagesInput(
            task_id="t-kube",
            images=[tls_registry.ref("amd64only")],
            image_pull_secrets=["preflight-absent", "preflight-wrong", "preflight-good"],
        )
        result = await env.run(acts.resolve_images, inp)
        assert result.warnings == ["pull secret 'preflight-absent' does not exist"]
        (img,) = result.images
        assert img.error is None, img.message
        assert img.digest == tls_registry.images["amd64only"].digest
        assert [(p.os, p.architecture) for p in img.platforms] == [("linux", "amd64")]
        # ...and the wrong one alone: the registry's refusal, no anonymous attempt
        inp = inp.model_copy(update={"image_pull_secrets": ["preflight-wrong"]})
        (img,) = (await env.run(acts.resolve_images, inp)).images
        assert img.error == PreflightError.UNAUTHORIZED
        assert "UNAUTHORIZED: authentication required" in img.message
    finally:
        kube.close()
