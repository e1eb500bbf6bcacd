"""The kustomize base (and its overlays) render, and say what the issue and the runbook promise.

RBAC exactly as specified and nothing more, restricted pod security, probes on real routes,
env names that Settings reads, consistent ports and selectors.
"""

from __future__ import annotations

import os
import socket
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import TLSConfig

from activities.jobspec import build_job
from common.models import TaskSpec
from common.settings import Settings
from common.temporal import tls_config

from .conftest import containers, find, one, restricted_violations, settings_env_names

pytestmark = pytest.mark.unit

NS = "ips"
PULL_NS = "ips-pull"
ROLE_RULES = {
    ("batch", "jobs", verb)
    for verb in ("create", "get", "list", "watch", "delete", "deletecollection")
} | {("", res, verb) for res in ("pods", "events") for verb in ("get", "list", "watch")}
CLUSTER_ROLE_RULES = {("", "nodes", verb) for verb in ("get", "list", "watch")}
WORKER_SA = {"kind": "ServiceAccount", "name": "ips-worker", "namespace": NS}


def flatten(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, res, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for res in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def all_docs(
    base: list[dict[str, Any]], overlays: dict[str, list[dict[str, Any]]]
) -> list[tuple[str, list[dict[str, Any]]]]:
    return [("base", base), *overlays.items()]


# --- what is there -------------------------------------------------------------------------


def test_base_has_every_piece(base: list[dict[str, Any]]) -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in base)
    assert kinds == sorted(
        [
            ("Namespace", NS),
            ("Namespace", PULL_NS),
            ("ServiceAccount", "ips-api"),
            ("ServiceAccount", "ips-worker"),
            ("ConfigMap", "ips-config"),
            ("ClusterRole", "ips-worker-nodes"),
            ("ClusterRoleBinding", "ips-worker-nodes"),
            ("Role", "ips-worker"),
            ("RoleBinding", "ips-worker"),
            ("Deployment", "ips-api"),
            ("Deployment", "ips-worker"),
            ("Service", "ips-api"),
            ("PodDisruptionBudget", "ips-api"),
            ("PodDisruptionBudget", "ips-worker"),
            ("NetworkPolicy", "default-deny"),
            ("NetworkPolicy", "default-deny"),
            ("NetworkPolicy", "ips-api"),
            ("NetworkPolicy", "ips-worker"),
        ]
    )
    in_pull_ns = {("Role", "ips-worker"), ("RoleBinding", "ips-worker")}
    for d in base:
        if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            key = (d["kind"], d["metadata"]["name"])
            expected = PULL_NS if key in in_pull_ns else NS
            if key == ("NetworkPolicy", "default-deny"):
                continue  # one in each namespace, checked below
            assert d["metadata"]["namespace"] == expected, key
    deny = {d["metadata"]["namespace"] for d in find(base, "NetworkPolicy")}
    assert deny == {NS, PULL_NS}


def test_overlays_exist_and_render(overlays: dict[str, list[dict[str, Any]]]) -> None:
    assert set(overlays) == {"temporal-mtls", "temporal-api-key", "private-registry"}
    for name, docs in overlays.items():
        assert len(find(docs, "Deployment")) == 2, name


# --- RBAC --------------------------------------------------------------------------------


def test_rbac_is_exactly_least_privilege(
    base: list[dict[str, Any]], overlays: dict[str, list[dict[str, Any]]]
) -> None:
    for label, docs in all_docs(base, overlays):
        # pull secrets have a Role of their own (tests/deploy/test_pull_secret_rbac.py)
        (cluster_role,) = find(docs, "ClusterRole")
        role = one(docs, "Role", "ips-worker")
        assert flatten(cluster_role["rules"]) == CLUSTER_ROLE_RULES, label
        assert flatten(role["rules"]) == ROLE_RULES, label
        assert role["metadata"]["namespace"] == PULL_NS
        for rule in [*cluster_role["rules"], *role["rules"]]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], f"{label}: wildcard in {key}"
                assert not any("*" in v for v in rule[key]), f"{label}: wildcard in {key}"
            assert "secrets" not in rule["resources"]
            assert "resourceNames" not in rule and "nonResourceURLs" not in rule


def test_only_the_worker_is_bound(base: list[dict[str, Any]]) -> None:
    crb = one(base, "ClusterRoleBinding", "ips-worker-nodes")
    rb = one(base, "RoleBinding", "ips-worker")
    assert crb["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "ips-worker-nodes",
    }
    assert rb["roleRef"]["kind"] == "Role" and rb["roleRef"]["name"] == "ips-worker"
    assert crb["subjects"] == [WORKER_SA] and rb["subjects"] == [WORKER_SA]
    assert len(find(base, "ClusterRoleBinding")) == 1 and len(find(base, "RoleBinding")) == 1


def test_api_has_no_kubernetes_credentials(base: list[dict[str, Any]]) -> None:
    sa = one(base, "ServiceAccount", "ips-api")
    pod = one(base, "Deployment", "ips-api")["spec"]["template"]["spec"]
    assert sa["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "ips-api"
    assert pod["automountServiceAccountToken"] is False
    worker = one(base, "Deployment", "ips-worker")["spec"]["template"]["spec"]
    assert worker["serviceAccountName"] == "ips-worker"


def test_work_namespace_is_the_role_namespace(base: list[dict[str, Any]]) -> None:
    config = one(base, "ConfigMap", "ips-config")["data"]
    assert config["K8S_NAMESPACE"] == one(base, "Role", "ips-worker")["metadata"]["namespace"]


def test_pull_jobs_run_apart_from_the_api_tokens(
    base: list[dict[str, Any]], overlays: dict[str, list[dict[str, Any]]]
) -> None:
    """Issue 14: the worker can create pods only where no IPS secret lives, so a compromised
    worker cannot mount the API tokens (or the Temporal credentials) in a pod."""
    for label, docs in all_docs(base, overlays):
        config = one(docs, "ConfigMap", "ips-config")["data"]
        assert config["K8S_NAMESPACE"] == PULL_NS, label
        # Every Secret IPS's own pods use is in `ips`, never in the pull namespace.
        for dep in find(docs, "Deployment"):
            assert dep["metadata"]["namespace"] == NS, label
            for c in containers(dep):
                for env in c.get("env", []):
                    if "secretKeyRef" in env.get("valueFrom", {}):
                        assert dep["metadata"]["namespace"] != config["K8S_NAMESPACE"]
        # The worker's namespaced rights (jobs, pods, the allowed pull secrets) exist in the
        # pull namespace only.
        roles = find(docs, "Role")
        assert {r["metadata"]["namespace"] for r in roles} == {PULL_NS}, label
        for binding in find(docs, "RoleBinding"):
            assert binding["metadata"]["namespace"] == PULL_NS
            assert binding["subjects"] == [WORKER_SA]
        labels = one(docs, "Namespace", PULL_NS)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", label


# --- pod security ------------------------------------------------------------------------


def test_namespace_enforces_restricted(base: list[dict[str, Any]]) -> None:
    for ns in (NS, PULL_NS):
        labels = one(base, "Namespace", ns)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_deployments_meet_restricted_and_harden_further(
    base: list[dict[str, Any]], overlays: dict[str, list[dict[str, Any]]]
) -> None:
    for label, docs in all_docs(base, overlays):
        for dep in find(docs, "Deployment"):
            name = f"{label}/{dep['metadata']['name']}"
            pod = dep["spec"]["template"]["spec"]
            assert restricted_violations(pod) == [], name
            psc = pod["securityContext"]
            assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 10001, name
            assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            for c in containers(dep):
                assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
                assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], name
                assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"]), name


def test_prewarm_jobs_are_admitted_by_the_namespace() -> None:
    """The namespace enforces restricted, so the Jobs the activities build must comply."""
    job = build_job(
        task_id="task-1",
        unit=0,
        node="node-1",
        spec=TaskSpec(images=["nginx:1.27"], batch_size=10),
        worker_image=Settings().worker_image,
        ttl_seconds=600,
        priority_class_name=None,
    )
    assert restricted_violations(job["spec"]["template"]["spec"]) == []


def test_restricted_checker_catches_violations() -> None:
    bad = {
        "hostNetwork": True,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"privileged": True, "runAsUser": 0}}],
    }
    found = " ".join(restricted_violations(bad))
    for word in ("hostNetwork", "hostPath", "privileged", "runAsUser 0", "ALL", "seccomp"):
        assert word in found


# --- deployments -------------------------------------------------------------------------


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


# --- settings -----------------------------------------------------------------------------


def test_env_names_are_settings(
    base: list[dict[str, Any]], overlays: dict[str, list[dict[str, Any]]]
) -> None:
    known = settings_env_names()
    for label, docs in all_docs(base, overlays):
        (config,) = find(docs, "ConfigMap")
        assert set(config["data"]) <= known, f"{label}: {set(config['data']) - known}"
        for dep in find(docs, "Deployment"):
            for c in containers(dep):
                names = {e["name"] for e in c.get("env", [])}
                assert names <= known, f"{label}/{dep['metadata']['name']}: {names - known}"
                refs = {r["configMapRef"]["name"] for r in c.get("envFrom", [])}
                assert refs == {"ips-config"}


def test_configmap_is_valid_settings(
    base: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    for key, value in one(base, "ConfigMap", "ips-config")["data"].items():
        monkeypatch.setenv(key, value)
    s = Settings()
    assert s.k8s_namespace == PULL_NS and s.server_port == 8080 and s.metrics_port == 9090
    assert tls_config(s) is False
    assert s.ips_allowed_registries == [] and s.ips_allowed_pull_secrets == []
    assert not s.ips_allow_always_pull and s.ips_max_running_tasks == 20
    # Loopback is the code's default; a pod must listen on its own interfaces to be reached.
    assert s.server_host == s.metrics_host == "0.0.0.0"


def test_mtls_overlay_builds_a_tls_client_config(
    overlays: dict[str, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overlay's paths sit under the Secret's mount, and yield a client-certificate TLS."""
    docs = overlays["temporal-mtls"]
    config = one(docs, "ConfigMap", "ips-config")["data"]
    for dep in find(docs, "Deployment"):
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        for var in ("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY"):
            mount = os.path.dirname(config[var])
            assert mount in mounts, f"{dep['metadata']['name']}: {var} not under a mount"
            assert vols[mounts[mount]]["secret"]["secretName"] == "temporal-tls"
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    for key, value in config.items():
        if value.startswith("/etc/temporal-tls/"):
            local = tmp_path / os.path.basename(value)
            local.write_text(f"pem for {key}\n")
            value = str(local)
        monkeypatch.setenv(key, value)
    cfg = tls_config(Settings())
    assert isinstance(cfg, TLSConfig)
    assert cfg.client_cert == b"pem for TEMPORAL_TLS_CERT\n"
    assert cfg.client_private_key == b"pem for TEMPORAL_TLS_KEY\n"


def test_api_key_overlay_reads_the_key_from_a_secret(
    overlays: dict[str, list[dict[str, Any]]],
) -> None:
    docs = overlays["temporal-api-key"]
    for dep in find(docs, "Deployment"):
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in c["env"]}
        ref = env["TEMPORAL_API_KEY"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "temporal-api-key", "key": "api-key"}
    assert tls_config(Settings(temporal_api_key="k")) is True
