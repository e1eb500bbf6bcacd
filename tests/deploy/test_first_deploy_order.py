"""The Kubernetes manifests need no start order on a first deploy (docs/deploy.md, "First
deploy"): the API registers the search attributes itself, so nothing may make the API wait for
the worker or the worker for the API, and the API must be able to reach Temporal to register.
What happens at run time is tested in tests/api/test_first_deploy.py and tests/image."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import one

pytestmark = pytest.mark.unit


def _pod(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = one(docs, "Deployment", name)["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("name", ["ips-api", "ips-worker"])
def test_no_deployment_waits_for_the_other(base: list[dict[str, Any]], name: str) -> None:
    pod = _pod(base, name)
    assert not pod.get("initContainers"), f"{name} must not gate its start on anything"
    other = "ips-worker" if name == "ips-api" else "ips-api"
    text = repr(pod)
    assert other not in text.replace(f"{name}", ""), f"{name} refers to {other}"


def test_api_readiness_covers_temporal_and_search_attributes(base: list[dict[str, Any]]) -> None:
    (container,) = _pod(base, "ips-api")["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["args"] == ["api"] or container.get("command", [])[-1:] == ["api"]


def test_api_may_reach_temporal_to_register(base: list[dict[str, Any]]) -> None:
    api = one(base, "NetworkPolicy", "ips-api")["spec"]
    assert 7233 in {p["port"] for r in api["egress"] for p in r["ports"]}
    config = one(base, "ConfigMap", "ips-config")["data"]
    # The API and the worker read one Temporal address and namespace: they register in the
    # namespace the worker polls.
    api_env = _pod(base, "ips-api")["containers"][0].get("envFrom", [])
    worker_env = _pod(base, "ips-worker")["containers"][0].get("envFrom", [])
    assert {"configMapRef": {"name": "ips-config"}} in api_env
    assert {"configMapRef": {"name": "ips-config"}} in worker_env
    assert "TEMPORAL_ADDRESS" in config and "TEMPORAL_NAMESPACE" in config
