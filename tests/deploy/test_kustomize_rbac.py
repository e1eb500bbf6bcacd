"""The kustomize RBAC: exactly what the worker needs and nothing more, bound to the worker only,
and the pull Jobs in a namespace of their own, apart from the API tokens (issue 14)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import NS, PULL_NS, all_docs, containers, find, one

pytestmark = pytest.mark.unit

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


def test_rbac_is_exactly_least_privilege(
    base: list[dict[str, Any]], overlays: dict[str, list[dict[str, Any]]]
) -> None:
    for label, docs in all_docs(base, overlays):
        (cluster_role,) = find(docs, "ClusterRole")
        (role,) = find(docs, "Role")
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
        # The worker's namespaced rights (jobs, pods) exist in the pull namespace only.
        roles = find(docs, "Role")
        assert [r["metadata"]["namespace"] for r in roles] == [PULL_NS], label
        (binding,) = find(docs, "RoleBinding")
        assert binding["metadata"]["namespace"] == PULL_NS
        assert binding["subjects"] == [WORKER_SA]
        labels = one(docs, "Namespace", PULL_NS)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", label
