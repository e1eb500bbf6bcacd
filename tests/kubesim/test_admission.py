"""Admission refusals: the Job exists, carries FailedCreate Events with the API server's
message, and has no pod; a direct pod create gets the API server's status."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from kubesim.testing import SimHandle, start_sim
from tests.kubesim.conftest import job_body, job_pods, wait_for

pytestmark = pytest.mark.integration

DENIED = "registry.example.com/denied/app:1"
SLOW = "registry.example.com/slow:1"

RESTRICTED_SC = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def scenario(**admission: Any) -> dict[str, Any]:
    return {
        "nodeGroups": [{"name": "a", "count": 2}, {"name": "b", "count": 2}],
        "namespaces": ["secure"],
        "images": [{"name": SLOW, "pullSeconds": 100000}],
        "admission": admission,
    }


def _apis(sim: SimHandle) -> tuple[client.CoreV1Api, client.BatchV1Api]:
    api = config.new_client_from_config(config_file=str(sim.kubeconfig_path))
    return client.CoreV1Api(api), client.BatchV1Api(api)


def failed_create(sim: SimHandle, job: str, namespace: str = "default") -> dict[str, Any]:
    return wait_for(
        lambda: next(
            (
                e
                for e in sim.objects("events", namespace)
                if e["involvedObject"]["name"] == job and e["reason"] == "FailedCreate"
            ),
            None,
        ),
        what=f"FailedCreate on {job}",
    )


def _refused(
    sim: SimHandle, batch: client.BatchV1Api, body: dict[str, Any], ns: str = "default"
) -> str:
    name = body["metadata"]["name"]
    batch.create_namespaced_job(ns, body)
    ev = failed_create(sim, name, ns)
    assert ev["type"] == "Warning" and ev["source"]["component"] == "job-controller"
    assert ev["involvedObject"]["kind"] == "Job"
    job = batch.read_namespaced_job(name, ns)
    assert not job.status.active and not job.status.conditions
    assert not sim.objects("pods", ns, f"job-name={name}")
    return str(ev["message"])


def test_missing_priority_class_only_on_its_pool() -> None:
    sc = scenario(priorityClasses=["prewarm"], priorityNodeGroups=["b"])
    with start_sim(nodes=None, scenario=sc, time_scale=100) as sim:
        core, batch = _apis(sim)
        c = [{"name": "c", "image": "busybox"}]
        msg = _refused(sim, batch, job_body("pb", c, node="b-1", pod={"priorityClassName": "x"}))
        assert (
            msg == 'Error creating: pods "pb-" is forbidden: no PriorityClass with name x was found'
        )
        batch.create_namespaced_job(
            "default", job_body("pa", c, node="a-1", pod={"priorityClassName": "x"})
        )
        wait_for(lambda: job_pods(sim, "pa"), what="a pod on the other pool")
        # It is retried with back-off: the Event's count grows, still no pod.
        wait_for(lambda: failed_create(sim, "pb")["count"] >= 2, what="a retried create")
        # A direct create gets 403 Forbidden with the same message.
        with pytest.raises(ApiException) as ei:
            core.create_namespaced_pod(
                "default",
                {
                    "metadata": {"name": "direct"},
                    "spec": {"nodeName": "b-2", "priorityClassName": "x", "containers": c},
                },
            )
        body = json.loads(ei.value.body)
        assert ei.value.status == 403 and body["reason"] == "Forbidden"
        assert (
            body["message"] == 'pods "direct" is forbidden: no PriorityClass with name x was found'
        )


def test_quota_limit_range_pod_security_and_webhook() -> None:
    sc = scenario(
        quotas=[{"name": "q", "pods": 1}],
        limitRanges=[{"name": "lr", "namespace": "secure", "maxCpu": "500m"}],
        podSecurityEnforce={"secure": "restricted"},
        webhooks=[
            {"name": "allow.example.com", "deniedImagePrefixes": ["registry.example.com/denied/"]}
        ],
    )
    with start_sim(nodes=None, scenario=sc, time_scale=100) as sim:
        _, batch = _apis(sim)
        msg = _refused(sim, batch, job_body("wh", [{"name": "c", "image": DENIED}]))
        assert msg == (
            'Error creating: admission webhook "allow.example.com" denied the request: '
            f"image {DENIED} is not from an allowed registry"
        )
        plain = [{"name": "c", "image": "busybox", "resources": {"limits": {"cpu": "1"}}}]
        msg = _refused(sim, batch, job_body("lr", plain), "secure")
        assert msg == (
            'Error creating: pods "lr-" is forbidden: maximum cpu usage per Container is 500m, '
            "but limit is 1"
        )
        small = [{"name": "c", "image": "busybox", "resources": {"limits": {"cpu": "100m"}}}]
        msg = _refused(sim, batch, job_body("ps", small), "secure")
        assert msg.startswith(
            'Error creating: pods "ps-" is forbidden: violates PodSecurity "restricted:latest": '
            'allowPrivilegeEscalation != false (container "c" must set '
            "securityContext.allowPrivilegeEscalation=false)"
        )
        hardened = [{**small[0], "securityContext": RESTRICTED_SC}]
        batch.create_namespaced_job("secure", job_body("ok", hardened))
        wait_for(lambda: sim.objects("pods", "secure", "job-name=ok"), what="the hardened pod")
        # Quota: one pod in default may exist; a second pod is refused while the first runs.
        slow = [{"name": "c", "image": SLOW}]
        batch.create_namespaced_job("default", job_body("first", slow))
        wait_for(lambda: job_pods(sim, "first"), what="the first pod")
        msg = _refused(sim, batch, job_body("second", slow))
        assert msg == (
            'Error creating: pods "second-" is forbidden: exceeded quota: q, requested: pods=1, '
            "used: pods=1, limited: pods=1"
        )


def test_job_controller_pace_pods_trail_their_jobs() -> None:
    sc = {
        "nodeGroups": [{"name": "a", "count": 10}],
        "controlPlane": {"controllerQps": 0.02, "controllerBurst": 2},
    }
    with start_sim(nodes=None, scenario=sc, time_scale=100) as sim:
        _, batch = _apis(sim)
        for i in range(10):
            batch.create_namespaced_job(
                "default", job_body(f"p{i}", [{"name": "c", "image": "busybox"}])
            )
        jobs = sim.objects("jobs", "default")
        pods = sim.objects("pods", "default")
        # burst 2 = one pod, then 0.02 QPS (2 tokens per real second here): far from 10
        assert len(jobs) == 10 and len(pods) <= 5
        wait_for(lambda: len(sim.objects("pods", "default")) == 10, timeout=30, what="all pods")


def test_priority_class_rule_sees_a_pod_pinned_by_node_affinity() -> None:
    """A pod pinned as a DaemonSet pins (and IPS its pull pods), by a required
    `matchFields metadata.name In [node]` term, belongs to that node's pool."""
    sc = scenario(priorityClasses=["prewarm"], priorityNodeGroups=["b"])
    with start_sim(nodes=None, scenario=sc, time_scale=100) as sim:
        _, batch = _apis(sim)
        c = [{"name": "c", "image": "busybox"}]
        pin = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b-1"]}]}
        ]}}  # fmt: skip
        body = job_body(
            "pinned", c, pod={"priorityClassName": "x", "affinity": {"nodeAffinity": pin}}
        )
        msg = _refused(sim, batch, body)
        assert msg == (
            'Error creating: pods "pinned-" is forbidden: no PriorityClass with name x was found'
        )
