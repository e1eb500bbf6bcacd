"""Pod security: both namespaces enforce the restricted standard, IPS's Deployments meet it and
harden further, and the pull Jobs the activities build are admitted there."""

from __future__ import annotations

from typing import Any

import pytest

from activities.jobspec import build_job
from common.models import TaskSpec
from common.settings import Settings

from .conftest import NS, PULL_NS, all_docs, containers, find, one, restricted_violations

pytestmark = pytest.mark.unit


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
