"""The Deployments, Service, PodDisruptionBudgets and NetworkPolicies: replicas, resources,
spread and grace; `ips` subcommands; probes on real API routes; consistent ports and selectors."""

from __future__ import annotations

import socket
from http import HTTPStatus
from typing import Any

import pytest

from common.settings import Settings

from .conftest import containers, find, one

pytestmark = pytest.mark.unit


def test_replicas_resources_spread_and_grace(base: list[dict[str, Any]]) -> None:
    for name in ("ips-api", "ips-worker"):
        dep = one(base, "Deployment", name)
        pod = dep["spec"]["template"]["spec"]
        assert dep["spec"]["replicas"] == 2, name
        for c in containers(dep):
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{name} {kind}"
        keys = {t["topologyKey"] for t in pod["topologySpreadConstraints"]}
        assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}, name
        for t in pod["topologySpreadConstraints"]:
            assert t["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
        assert (
            dep["spec"]["template"]["metadata"]["labels"] | dep["spec"]["selector"]["matchLabels"]
            == dep["spec"]["template"]["metadata"]["labels"]
        )
    worker = one(base, "Deployment", "ips-worker")["spec"]["template"]["spec"]
    api = one(base, "Deployment", "ips-api")["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] >= 60
    assert worker["terminationGracePeriodSeconds"] > api["terminationGracePeriodSeconds"]


def test_commands_are_ips_subcommands(base: list[dict[str, Any]]) -> None:
    from cli.main import app

    commands = {
        c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
    }
    assert one(base, "Deployment", "ips-api")["spec"]["template"]["spec"]["containers"][0][
        "args"
    ] == ["api"]
    assert one(base, "Deployment", "ips-worker")["spec"]["template"]["spec"]["containers"][0][
        "args"
    ] == ["worker"]
    assert {"api", "worker", "sim"} <= commands


def test_api_probes_and_ports(base: list[dict[str, Any]]) -> None:
    config = one(base, "ConfigMap", "ips-config")["data"]
    (api,) = one(base, "Deployment", "ips-api")["spec"]["template"]["spec"]["containers"]
    (port,) = api["ports"]
    assert port["containerPort"] == int(config["SERVER_PORT"])
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    svc = one(base, "Service", "ips-api")
    assert (
        svc["spec"]["selector"]
        == one(base, "Deployment", "ips-api")["spec"]["selector"]["matchLabels"]
    )
    assert svc["spec"]["ports"][0]["targetPort"] == port["name"]


def test_worker_metrics_port(base: list[dict[str, Any]]) -> None:
    config = one(base, "ConfigMap", "ips-config")["data"]
    dep = one(base, "Deployment", "ips-worker")
    (worker,) = dep["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert ports == {
        "metrics": int(config["METRICS_PORT"]),
        "sdk-metrics": int(config["TEMPORAL_METRICS_PORT"]),
    }
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == config["METRICS_PORT"]
    assert worker["livenessProbe"]["httpGet"]["path"] == "/metrics"


def test_probe_paths_are_api_routes(base: list[dict[str, Any]]) -> None:
    """The probed paths answer on the real API app: liveness without Temporal, readiness 503
    while Temporal does not answer, metrics in the Prometheus format."""
    from fastapi.testclient import TestClient

    from api.main import create_app

    with socket.socket() as sock:  # a port nothing listens on: Temporal is "down"
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    (api,) = one(base, "Deployment", "ips-api")["spec"]["template"]["spec"]["containers"]
    client = TestClient(create_app(Settings(temporal_address=dead, ips_auth="none")))
    live = client.get(api["livenessProbe"]["httpGet"]["path"])
    assert live.status_code == HTTPStatus.OK
    ready = client.get(api["readinessProbe"]["httpGet"]["path"])
    assert ready.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    scraped = one(base, "Deployment", "ips-api")["spec"]["template"]["metadata"]["annotations"]
    metrics = client.get(scraped["prometheus.io/path"])
    assert metrics.status_code == HTTPStatus.OK
    assert "ips_api_request_seconds" in metrics.text


def test_pdbs_select_their_pods(base: list[dict[str, Any]]) -> None:
    for name in ("ips-api", "ips-worker"):
        pdb = one(base, "PodDisruptionBudget", name)
        dep = one(base, "Deployment", name)
        assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
        assert pdb["spec"]["minAvailable"] < dep["spec"]["replicas"]


def test_network_policies(base: list[dict[str, Any]]) -> None:
    for policy in find(base, "NetworkPolicy", "default-deny"):  # in ips and in ips-pull
        deny = policy["spec"]
        assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
        assert "ingress" not in deny and "egress" not in deny
    api = one(base, "NetworkPolicy", "ips-api")["spec"]
    ingress_ports = {p["port"] for r in api["ingress"] for p in r["ports"]}
    assert ingress_ports == {8080}
    egress = {p["port"] for r in api["egress"] for p in r["ports"]}
    assert egress == {53, 7233}, "the API talks only to DNS and Temporal"
    worker = one(base, "NetworkPolicy", "ips-worker")["spec"]
    egress = {p["port"] for r in worker["egress"] for p in r["ports"]}
    assert egress == {53, 7233, 443, 6443}
