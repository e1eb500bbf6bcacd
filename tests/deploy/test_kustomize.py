"""The kustomize base and its overlays render, with every piece in its namespace.

What the pieces say is checked by area: test_kustomize_rbac.py, test_kustomize_pod_security.py,
test_kustomize_deployments.py and test_kustomize_settings.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import NS, PULL_NS, find

pytestmark = pytest.mark.unit


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
    assert set(overlays) == {"temporal-mtls", "temporal-api-key"}
    for name, docs in overlays.items():
        assert len(find(docs, "Deployment")) == 2, name
