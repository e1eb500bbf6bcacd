"""The shipped RBAC covers every Kubernetes call the worker makes, and kubesim takes what it can
of the rendered manifests.

A real task runs in-process (worker.main.build_worker) against kubesim, in the namespace created
by applying the rendered Namespace; kubesim records each request by verb and resource. Every
(verb, resource) must be allowed by the rendered Role (namespaced) or ClusterRole (nodes).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from temporalio.client import Client

from common.models import TaskSpec
from kubesim.testing import SimHandle, start_sim

from .conftest import DEPLOY, find, one, render, tool
from .engine_harness import run_engine

pytestmark = pytest.mark.integration

NS = "ips-pull"  # the pull namespace: where the worker creates Jobs (K8S_NAMESPACE)
GROUPS = {"jobs": "batch"}  # every other resource the worker touches is in the core group
CLUSTER_SCOPED = {"nodes"}
GOOD = "busybox:latest"
NOT_FOUND = "registry.example.com/ips-test/not-found:1"


def allowed(rules: list[dict[str, Any]], verb: str, resource: str) -> bool:
    group = GROUPS.get(resource, "")
    return any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules
    )


def authorize(docs: list[dict[str, Any]], verb: str, resource: str) -> bool:
    """As the RBAC authorizer decides for ServiceAccount ips-worker in the pull namespace.

    A GET of that namespace is evaluated as a request in it (so a Role there can
    allow it); any other cluster-scoped request needs the ClusterRole.
    """
    role = one(docs, "Role", "ips-worker")
    cluster_role = one(docs, "ClusterRole", "ips-worker-nodes")
    if resource in CLUSTER_SCOPED:
        return allowed(cluster_role["rules"], verb, resource)
    return allowed(role["rules"], verb, resource) or allowed(cluster_role["rules"], verb, resource)


def kubectl(sim: SimHandle, *args: str, stdin: str | None = None) -> str:
    res = subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(sim.kubeconfig_path), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert res.returncode == 0, f"kubectl {' '.join(args)}: {res.stderr}"
    return res.stdout


@pytest.fixture(scope="module")
def base_docs() -> list[dict[str, Any]]:
    return render(DEPLOY)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with start_sim(nodes=8, time_scale=20) as handle:
        yield handle


@pytest.fixture(scope="module")
def applied(sim: SimHandle, base_docs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Apply every rendered object whose kind kubesim serves; return applied/skipped kinds."""
    served = set(kubectl(sim, "api-resources", "--no-headers", "-o", "name").split())
    kinds = {
        line.split()[-1]
        for line in kubectl(sim, "api-resources", "--no-headers").splitlines()
        if line.strip()
    }
    take = [d for d in base_docs if d["kind"] in kinds]
    skip = sorted({d["kind"] for d in base_docs if d["kind"] not in kinds})
    # kubesim serves no OpenAPI document, so client-side schema validation is off.
    kubectl(sim, "apply", "--validate=false", "-f", "-", stdin=yaml.safe_dump_all(take))
    print(f"kubesim serves {sorted(served)}; applied {[d['kind'] for d in take]}; "
          f"not served by kubesim, so not applied: {skip}")  # fmt: skip
    return {"applied": sorted({d["kind"] for d in take}), "skipped": skip}


def test_rendered_namespace_applies_to_kubesim(
    sim: SimHandle, applied: dict[str, list[str]], base_docs: list[dict[str, Any]]
) -> None:
    assert "Namespace" in applied["applied"]
    ns = json.loads(kubectl(sim, "get", "namespace", NS, "-o", "json"))
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # What kubesim does not serve (RBAC, Deployments, ...) is rendered and checked offline by
    # the test_kustomize*.py modules; this list is what the report names as not applied.
    assert set(applied["skipped"]) == {d["kind"] for d in base_docs} - set(applied["applied"])


async def test_rbac_covers_every_call_of_a_real_task(
    dev_client: Client,
    sim: SimHandle,
    applied: dict[str, list[str]],
    base_docs: list[dict[str, Any]],
) -> None:
    """One task that succeeds and one that fails (events read, clean-up run), in the pull namespace.

    Only the worker's calls count: kubectl's (the `applied` fixture) are taken off first.
    """
    before = sim.stats()["requests"]
    async with run_engine(dev_client, sim, k8s_namespace=NS, job_ttl_seconds=0) as engine:
        ok = await engine.start(TaskSpec(images=[GOOD], batch_size=2))
        bad = await engine.start(
            TaskSpec(images=[NOT_FOUND], batch_size=2, max_failure_ratio=0.0, timeout_seconds=30)
        )
        results = await asyncio.wait_for(asyncio.gather(ok.result(), bad.result()), 120)
    requests: dict[str, dict[str, dict[str, int]]] = sim.stats()["requests"]
    seen = {
        (verb, res)
        for verb, by_res in requests.items()
        for res, by_code in by_res.items()
        if sum(by_code.values()) > sum(before.get(verb, {}).get(res, {}).values())
    }
    # The task really talked to the cluster: listed nodes, created Jobs and followed pods.
    assert {("list", "nodes"), ("create", "jobs"), ("watch", "pods")} <= seen, seen
    assert [r.status.value for r in results] == ["completed", "failed"], results
    uncovered = sorted((verb, res) for verb, res in seen if not authorize(base_docs, verb, res))
    assert uncovered == [], (
        f"the worker made Kubernetes calls the shipped RBAC forbids: {uncovered}; "
        "a real cluster answers them 403"
    )


def test_authorize_model_denies_what_is_not_granted(base_docs: list[dict[str, Any]]) -> None:
    assert authorize(base_docs, "list", "nodes")
    assert authorize(base_docs, "deletecollection", "jobs")
    assert authorize(base_docs, "watch", "pods")
    for verb, res in [("patch", "nodes"), ("delete", "pods"), ("get", "secrets"),
                      ("create", "pods"), ("update", "jobs")]:  # fmt: skip
        assert not authorize(base_docs, verb, res), (verb, res)
    assert find(base_docs, "ClusterRole")
