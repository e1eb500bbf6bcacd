"""Reading pull secrets (issue 16): the worker may `get` exactly the allowed pull-secret names
(`resourceNames` = IPS_ALLOWED_PULL_SECRETS) in the pull namespace, never list/watch Secrets and
never another name; and its NetworkPolicy lets it reach registries (443, plus the ports an
overlay adds). Checked on the rendered base and every overlay, as the RBAC authorizer decides.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import find, one

pytestmark = pytest.mark.unit

NS, PULL_NS = "ips", "ips-pull"
WORKER_SA = {"kind": "ServiceAccount", "name": "ips-worker", "namespace": NS}


def rendered(
    base: list[dict[str, Any]], overlays: dict[str, list[dict[str, Any]]]
) -> list[tuple[str, list[dict[str, Any]]]]:
    return [("base", base), *overlays.items()]


def allowlist(docs: list[dict[str, Any]]) -> set[str]:
    raw = one(docs, "ConfigMap", "ips-config")["data"].get("IPS_ALLOWED_PULL_SECRETS", "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def worker_rules(docs: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """Every rule bound to the worker's ServiceAccount that applies in `namespace`."""
    rules: list[dict[str, Any]] = []
    for binding in find(docs, "RoleBinding") + find(docs, "ClusterRoleBinding"):
        if WORKER_SA not in binding.get("subjects", []):
            continue
        bound_ns = binding["metadata"].get("namespace")
        if bound_ns is not None and bound_ns != namespace:
            continue
        ref = binding["roleRef"]
        for role in find(docs, ref["kind"], ref["name"]):
            if ref["kind"] == "Role" and role["metadata"]["namespace"] != bound_ns:
                continue
            rules += role.get("rules", [])
    return rules


def can(docs: list[dict[str, Any]], verb: str, namespace: str, name: str | None = None) -> bool:
    """The RBAC authorizer's answer for the worker on core `secrets` (resourceNames match only
    requests for that name; a rule without them matches every name and list/watch)."""
    for rule in worker_rules(docs, namespace):
        if "" not in rule.get("apiGroups", []) and "*" not in rule.get("apiGroups", []):
            continue
        if not {"secrets", "*"} & set(rule.get("resources", [])):
            continue
        if not {verb, "*"} & set(rule.get("verbs", [])):
            continue
        names = rule.get("resourceNames") or []
        if not names or (name is not None and name in names):
            return True
    return False


def test_the_worker_gets_exactly_the_allowed_pull_secrets(
    base: list[dict[str, Any]], overlays: dict[str, list[dict[str, Any]]]
) -> None:
    for label, docs in rendered(base, overlays):
        allowed = allowlist(docs)
        for name in allowed:
            assert can(docs, "get", PULL_NS, name), f"{label}: cannot get {name}"
        for name in ("ips-api-tokens", "temporal-api-key", "someone-elses", "regcred2"):
            if name not in allowed:
                assert not can(docs, "get", PULL_NS, name), f"{label}: can get {name}"
        for verb in ("list", "watch", "create", "update", "patch", "delete"):
            assert not can(docs, verb, PULL_NS), f"{label}: can {verb} secrets"
            assert not any(can(docs, verb, PULL_NS, n) for n in allowed), f"{label}: {verb}"
        # nothing on Secrets in the namespace of IPS's own secrets
        for name in [*allowed, "ips-api-tokens"]:
            assert not can(docs, "get", NS, name), f"{label}: secrets in {NS}"


def test_secret_rules_name_the_allowlist_and_nothing_else(
    base: list[dict[str, Any]], overlays: dict[str, list[dict[str, Any]]]
) -> None:
    for label, docs in rendered(base, overlays):
        named: set[str] = set()
        for role in find(docs, "Role") + find(docs, "ClusterRole"):
            for rule in role.get("rules", []):
                if "secrets" not in rule.get("resources", []):
                    continue
                assert role["kind"] == "Role", f"{label}: {role['metadata']['name']}"
                assert role["metadata"]["namespace"] == PULL_NS, label
                assert rule["resources"] == ["secrets"] and rule["apiGroups"] == [""], label
                assert rule["verbs"] == ["get"], label
                assert rule.get("resourceNames"), f"{label}: a secrets rule without names"
                named |= set(rule["resourceNames"])
        assert named == allowlist(docs), f"{label}: resourceNames differ from the allowlist"


def test_base_reads_no_secrets_and_the_overlay_reads_its_one(
    base: list[dict[str, Any]], overlays: dict[str, list[dict[str, Any]]]
) -> None:
    assert allowlist(base) == set() and not can(base, "get", PULL_NS, "regcred")
    docs = overlays["private-registry"]
    assert allowlist(docs) == {"regcred"}
    role = one(docs, "Role", "ips-worker-pull-secrets")
    rule = {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["regcred"]}
    assert role["rules"] == [{**rule, "verbs": ["get"]}]
    assert one(docs, "RoleBinding", "ips-worker-pull-secrets")["subjects"] == [WORKER_SA]


def egress_ports(docs: list[dict[str, Any]]) -> list[set[int]]:
    spec = one(docs, "NetworkPolicy", "ips-worker")["spec"]
    assert "Egress" in spec["policyTypes"]
    # rules open to every destination (no `to`): registries have no fixed address
    return [{p["port"] for p in r.get("ports", [])} for r in spec["egress"] if not r.get("to")]


def test_the_worker_may_reach_registries(
    base: list[dict[str, Any]], overlays: dict[str, list[dict[str, Any]]]
) -> None:
    for label, docs in rendered(base, overlays):
        assert {443} in egress_ports(docs), f"{label}: no registry rule on 443"
        # the pull pods still have no network at all
        deny = find(docs, "NetworkPolicy", "default-deny")
        assert {p["metadata"]["namespace"] for p in deny} == {NS, PULL_NS}, label
    ports = set().union(*egress_ports(overlays["private-registry"]))
    assert {443, 5000} <= ports
    assert 5000 not in set().union(*egress_ports(base))
