"""The preflight activity with its pull secrets read from a cluster (kubesim) through the
worker's Kubernetes client, against the TLS + htpasswd registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from temporalio.testing import ActivityEnvironment

from activities.kube import Kube
from activities.registry import RegistryActivities, kube_secret_reader
from common.preflight import PreflightError, ResolveImagesInput
from common.settings import Settings
from kubesim.testing import SimHandle, start_sim
from tests.activities.registry.conftest import PASSWORD, USER, Served
from tests.activities.registry.pullsecrets import create_pull_secret

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with start_sim(nodes=1, time_scale=20) as handle:
        yield handle


async def test_pull_secrets_from_the_cluster(
    sim: SimHandle, tls_registry: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = tls_registry.registry.host
    create_pull_secret(sim, "preflight-wrong", host, USER, "not-the-password")
    create_pull_secret(sim, "preflight-good", host, USER, PASSWORD)
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
