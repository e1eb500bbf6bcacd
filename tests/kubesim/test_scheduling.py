"""The scheduler: taints, cordons, readiness, affinity, nodes joining and leaving."""

from __future__ import annotations

import pytest
from kubernetes import client

from kubesim.testing import SimHandle, start_sim
from tests.kubesim.conftest import FAST, job_body, job_done, job_pods, wait_for
from tests.kubesim.pods import create as _create

pytestmark = pytest.mark.integration


def test_taints_and_tolerations(sim: SimHandle, batch: client.BatchV1Api) -> None:
    _create(batch, job_body("gpu-no", [{"name": "c", "image": "busybox"}], node="gpu-2"))
    pod = wait_for(
        lambda: (p := job_pods(sim, "gpu-no")) and p[0]["status"].get("conditions") and p[0]
    )
    cond = pod["status"]["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )
    assert cond["message"].startswith(
        "0/50 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: present}, "
        "49 node(s) didn't match Pod's node affinity/selector."
    )
    assert "nodeName" not in pod["spec"]
    assert any(e["reason"] == "FailedScheduling" for e in sim.objects("events", "default"))

    tol = [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    ]
    _create(
        batch,
        job_body(
            "gpu-eq", [{"name": "c", "image": "busybox"}], node="gpu-2", pod={"tolerations": tol}
        ),
    )
    _create(
        batch,
        job_body(
            "gpu-ex",
            [{"name": "c", "image": "busybox"}],
            node="gpu-3",
            pod={"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]},
        ),
    )
    _create(
        batch,
        job_body(
            "gpu-pool",
            [{"name": "c", "image": "busybox"}],
            pod={"nodeSelector": {"pool": "gpu"}, "tolerations": [{"operator": "Exists"}]},
        ),
    )
    for j in ("gpu-eq", "gpu-ex", "gpu-pool"):
        assert wait_for(lambda j=j: job_done(sim, j))["status"]["succeeded"] == 1
    assert job_pods(sim, "gpu-pool")[0]["spec"]["nodeName"].startswith("gpu-")

    # Wrong value or effect does not tolerate.
    bad = [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "absent", "effect": "NoSchedule"}
    ]
    _create(
        batch,
        job_body(
            "gpu-bad", [{"name": "c", "image": "busybox"}], node="gpu-4", pod={"tolerations": bad}
        ),
    )
    wait_for(lambda: (p := job_pods(sim, "gpu-bad")) and p[0]["status"].get("conditions"))
    assert "nodeName" not in job_pods(sim, "gpu-bad")[0]["spec"]


def test_cordoned_and_not_ready_nodes(sim: SimHandle, batch: client.BatchV1Api) -> None:
    nodes = sim.objects("nodes")
    cordoned = next(n["metadata"]["name"] for n in nodes if n["spec"].get("unschedulable"))
    down = next(
        n["metadata"]["name"] for n in nodes if n["status"]["conditions"][-1]["status"] != "True"
    )
    _create(batch, job_body("cord", [{"name": "c", "image": "busybox"}], node=cordoned))
    pod = wait_for(
        lambda: (p := job_pods(sim, "cord")) and p[0]["status"].get("conditions") and p[0]
    )
    assert "1 node(s) were unschedulable" in pod["status"]["conditions"][0]["message"]
    # Tolerating every taint lands on the NotReady node, which never starts the pod.
    _create(
        batch,
        job_body(
            "down",
            [{"name": "c", "image": "busybox"}],
            node=down,
            pod={"tolerations": [{"operator": "Exists"}]},
        ),
    )
    pod = wait_for(lambda: (p := job_pods(sim, "down")) and p[0]["spec"].get("nodeName") and p[0])
    assert pod["spec"]["nodeName"] == down
    wait_for(lambda: job_done(sim, "cord") is None and True)
    assert "containerStatuses" not in job_pods(sim, "down")[0]["status"]
    # The node comes back: the pod runs; uncordon: the other pod schedules.
    sim.set_node_ready(down, True)
    sim.set_node_cordoned(cordoned, False)
    assert wait_for(lambda: job_done(sim, "down"))["status"]["succeeded"] == 1
    assert wait_for(lambda: job_done(sim, "cord"))["status"]["succeeded"] == 1


def test_node_affinity(sim: SimHandle, batch: client.BatchV1Api) -> None:
    aff = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "pool", "operator": "In", "values": ["general"]},
                            {
                                "key": "topology.kubernetes.io/zone",
                                "operator": "NotIn",
                                "values": ["zone-a"],
                            },
                            {"key": "kubernetes.io/arch", "operator": "Exists"},
                        ]
                    }
                ]
            }
        }
    }
    _create(batch, job_body("aff", [{"name": "c", "image": "busybox"}], pod={"affinity": aff}))
    wait_for(lambda: job_done(sim, "aff"))
    node = next(
        n
        for n in sim.objects("nodes")
        if n["metadata"]["name"] == job_pods(sim, "aff")[0]["spec"]["nodeName"]
    )
    assert node["metadata"]["labels"]["pool"] == "general"
    assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == "zone-b"


def test_nodes_join_and_leave(sim: SimHandle, batch: client.BatchV1Api) -> None:
    added = sim.add_nodes(2, group="gpu")
    assert added == ["gpu-7", "gpu-8"]
    node = next(n for n in sim.objects("nodes") if n["metadata"]["name"] == "gpu-7")
    assert (
        node["metadata"]["labels"]["pool"] == "gpu"
        and node["metadata"]["labels"]["kubernetes.io/hostname"] == "gpu-7"
    )
    _create(
        batch,
        job_body(
            "late",
            [{"name": "c", "image": "busybox"}],
            node="gpu-9",
            pod={"tolerations": [{"operator": "Exists"}]},
        ),
    )
    wait_for(lambda: (p := job_pods(sim, "late")) and p[0]["status"].get("conditions"))
    sim.add_nodes(1, group="gpu")
    assert wait_for(lambda: job_done(sim, "late"))["status"]["succeeded"] == 1
    # A node that disappears takes its pods with it; the Job counts the failure.
    with start_sim(
        time_scale=FAST,
        nodes=5,
        scenario={
            "nodeGroups": [{"name": "n", "count": 2}],
            "images": [{"name": "slow:1", "pullSeconds": 1000}],
        },
    ) as s2:
        b2 = client.BatchV1Api(
            __import__("kubernetes").config.new_client_from_config(
                config_file=str(s2.kubeconfig_path)
            )
        )
        b2.create_namespaced_job(
            "default",
            job_body("gone", [{"name": "c", "image": "slow:1"}], node="n-1", backoffLimit=0),
        )
        wait_for(lambda: (p := job_pods(s2, "gone")) and p[0]["spec"].get("nodeName"))
        s2.delete_node("n-1")
        failed = wait_for(lambda: job_done(s2, "gone"))
        assert failed["status"]["failed"] == 1
