"""Fidelity checked by a client nobody here wrote: real kubectl, with only kubesim's kubeconfig."""

from __future__ import annotations

import json

import pytest

from kubesim.testing import SimHandle, start_sim
from tests.kubesim.conftest import kubectl, kubectl_json, wait_for

pytestmark = pytest.mark.integration


def test_get_nodes_by_label(sim: SimHandle) -> None:
    out = kubectl(sim, "get", "nodes", "-l", "pool=compute").stdout.splitlines()
    assert out[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    names = {line.split()[0] for line in out[1:]}
    assert names == {f"compute-{i}" for i in range(1, 31)}
    statuses = {line.split()[1] for line in out[1:]}
    assert statuses == {"Ready", "NotReady"}
    wide = kubectl(sim, "get", "nodes", "-l", "pool=gpu", "-o", "wide").stdout
    assert "INTERNAL-IP" in wide and "containerd://" in wide
    assert kubectl(sim, "get", "nodes", "-o", "name").stdout.count("node/") == 50
    general = kubectl(sim, "get", "nodes", "-l", "pool=general").stdout
    assert "Ready,SchedulingDisabled" in general


def test_create_job_completes_and_describe_shows_events(sim: SimHandle) -> None:
    assert (
        "job.batch/x created"
        in kubectl(sim, "create", "job", "x", "--image=busybox", "--", "true").stdout
    )
    wait_for(lambda: "Complete" in kubectl(sim, "get", "job", "x").stdout, what="job x Complete")
    jobs = kubectl(sim, "get", "jobs").stdout.splitlines()
    assert jobs[0].split()[:3] == ["NAME", "STATUS", "COMPLETIONS"] and jobs[1].split()[:3] == [
        "x",
        "Complete",
        "1/1",
    ]
    pods = kubectl_json(sim, "get", "pods", "-l", "job-name=x")["items"]
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Succeeded"
    assert "Completed" in kubectl(sim, "get", "pods").stdout
    desc = kubectl(sim, "describe", "pod", pods[0]["metadata"]["name"]).stdout
    events = desc.split("Events:", 1)[1]
    for reason in ("Scheduled", "Pulling", "Pulled", "Created", "Started"):
        assert reason in events
    assert 'Successfully pulled image "busybox"' in events
    assert "Controlled By:  Job/x" in desc
    assert "SuccessfulCreate" in kubectl(sim, "describe", "job", "x").stdout
    assert "Completed" in kubectl(sim, "get", "events").stdout


def test_get_pods_json_walks_through_pull_states() -> None:
    with start_sim(time_scale=2, nodes=6) as sim:
        kubectl(sim, "create", "job", "walk", "--image=registry.example.com/ips-test/not-found:1")
        kubectl(sim, "create", "job", "ok", "--image=registry.example.com/app:1")
        seen: set[str] = set()

        def states() -> bool:
            for pod in kubectl_json(sim, "get", "pods")["items"]:
                for cs in pod["status"].get("containerStatuses", []):
                    st = cs["state"]
                    if "waiting" in st:
                        seen.add(st["waiting"]["reason"])
                    if "terminated" in st:
                        seen.add("terminated:" + st["terminated"]["reason"])
            return {
                "ContainerCreating",
                "ErrImagePull",
                "ImagePullBackOff",
                "terminated:Completed",
            } <= seen

        wait_for(states, timeout=20, what=f"all pull states (seen {seen})")
        table = kubectl(sim, "get", "pods").stdout
        assert "ImagePullBackOff" in table or "ErrImagePull" in table


def test_delete_job_cascade_background_removes_pods(sim: SimHandle) -> None:
    kubectl(sim, "create", "job", "gone", "--image=busybox", "--", "true")
    wait_for(lambda: kubectl_json(sim, "get", "pods", "-l", "job-name=gone")["items"], what="pod")
    out = kubectl(sim, "delete", "job", "gone", "--cascade=background")
    assert 'job.batch "gone" deleted' in out.stdout
    wait_for(
        lambda: not kubectl_json(sim, "get", "pods", "-l", "job-name=gone")["items"],
        what="pods removed",
    )
    assert "NotFound" in kubectl(sim, "get", "job", "gone", check=False).stderr


def test_kubectl_errors_and_misc(sim: SimHandle) -> None:
    err = kubectl(sim, "get", "pod", "nope", check=False)
    assert err.returncode != 0 and 'pods "nope" not found' in err.stderr
    kubectl(sim, "create", "job", "dup", "--image=busybox")
    err = kubectl(sim, "create", "job", "dup", "--image=busybox", check=False)
    assert 'jobs.batch "dup" already exists' in err.stderr
    assert "default" in kubectl(sim, "get", "ns").stdout
    assert "kube-system" in kubectl(sim, "get", "namespace", "kube-system", "-o", "name").stdout
    kubectl(sim, "cordon", "compute-2")
    node = json.loads(kubectl(sim, "get", "node", "compute-2", "-o", "json").stdout)
    assert node["spec"]["unschedulable"] is True
    assert any(t["key"] == "node.kubernetes.io/unschedulable" for t in node["spec"]["taints"])
    kubectl(sim, "label", "node", "compute-2", "drain=soon")  # a label patch keeps the cordon
    node = kubectl_json(sim, "get", "node", "compute-2")
    assert node["spec"]["unschedulable"] is True and node["metadata"]["labels"]["drain"] == "soon"
    assert [t["key"] for t in node["spec"]["taints"]] == ["node.kubernetes.io/unschedulable"]
    kubectl(sim, "uncordon", "compute-2")
    assert "unschedulable" not in kubectl_json(sim, "get", "node", "compute-2")["spec"]
    kubectl(sim, "label", "node", "compute-2", "team=a")
    assert (
        kubectl(sim, "get", "nodes", "-l", "team=a", "-o", "name").stdout.strip()
        == "node/compute-2"
    )
    resources = kubectl(sim, "api-resources").stdout
    assert "jobs" in resources and "nodes" in resources
