"""The REST surface through the official `kubernetes` client: discovery, selectors, errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubesim.testing import SimHandle
from tests.kubesim.conftest import job_body, wait_for

pytestmark = pytest.mark.integration


def _raw(
    sim: SimHandle,
    method: str,
    path: str,
    body: bytes | None = None,
    ctype: str = "application/json",
) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(
        sim.url + path, data=body, method=method, headers={"Content-Type": ctype}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"null")


def _status(exc: ApiException) -> dict[str, Any]:
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


def test_discovery(sim: SimHandle) -> None:
    assert _raw(sim, "GET", "/version")[2]["major"] == "1"
    assert _raw(sim, "GET", "/api")[2]["versions"] == ["v1"]
    names = {r["name"] for r in _raw(sim, "GET", "/api/v1")[2]["resources"]}
    assert {"nodes", "pods", "events", "namespaces"} <= names
    groups = _raw(sim, "GET", "/apis")[2]["groups"]
    assert groups[0]["name"] == "batch"
    assert _raw(sim, "GET", "/apis/batch/v1")[2]["resources"][0]["name"] == "jobs"
    code, _, body = _raw(sim, "GET", "/openapi/v3")
    assert code == 404 and body["reason"] == "NotFound"


def test_default_cluster_shape(sim: SimHandle, core: client.CoreV1Api) -> None:
    nodes = core.list_node().items
    assert len(nodes) == 50
    pools = {n.metadata.labels["pool"] for n in nodes}
    assert pools == {"compute", "general", "gpu"}
    assert {n.metadata.labels["topology.kubernetes.io/zone"] for n in nodes} == {"zone-a", "zone-b"}
    for n in nodes:
        assert n.metadata.labels["kubernetes.io/hostname"] == n.metadata.name
        assert n.metadata.labels["kubernetes.io/os"] == "linux"
        assert n.metadata.labels["kubernetes.io/arch"] in ("amd64", "arm64")
    not_ready = [
        n.metadata.name
        for n in nodes
        if next(c for c in n.status.conditions if c.type == "Ready").status != "True"
    ]
    cordoned = [n.metadata.name for n in nodes if n.spec.unschedulable]
    assert len(not_ready) == 1 and len(cordoned) == 1
    gpu = [n for n in nodes if n.metadata.labels["pool"] == "gpu"]
    assert all(any(t.key == "nvidia.com/gpu" for t in n.spec.taints) for n in gpu)
    warm = [
        n.metadata.name
        for n in nodes
        if any("docker.io/library/nginx:latest" in i.names for i in n.status.images or [])
    ]
    assert len(warm) == 5
    assert core.read_namespace("default").status.phase == "Active"
    assert core.read_namespace("kube-system").metadata.name == "kube-system"


def test_label_selectors(core: client.CoreV1Api) -> None:
    def names(sel: str) -> set[str]:
        return {n.metadata.name for n in core.list_node(label_selector=sel).items}

    compute = names("pool=compute")
    assert len(compute) == 30 and all(n.startswith("compute-") for n in compute)
    assert names("pool==compute") == compute
    assert len(names("pool!=compute")) == 20
    assert len(names("pool in (gpu,general)")) == 20
    assert len(names("pool notin (gpu,general)")) == 30
    assert len(names("nvidia.com/gpu.present")) == 6
    assert len(names("!nvidia.com/gpu.present")) == 44
    assert names("pool=compute,kubernetes.io/hostname=compute-3") == {"compute-3"}
    assert len(names("pool=gpu,topology.kubernetes.io/zone=zone-a")) == 3
    with pytest.raises(ApiException) as ei:
        core.list_node(label_selector="pool in (a")
    assert ei.value.status == 400


def test_field_selectors(sim: SimHandle, core: client.CoreV1Api, batch: client.BatchV1Api) -> None:
    assert [
        n.metadata.name for n in core.list_node(field_selector="metadata.name=gpu-2").items
    ] == ["gpu-2"]
    assert len(core.list_node(field_selector="spec.unschedulable=true").items) == 1
    batch.create_namespaced_job(
        "default", job_body("fs", [{"name": "c", "image": "busybox"}], node="compute-1")
    )
    wait_for(
        lambda: core.list_namespaced_pod("default", field_selector="status.phase=Succeeded").items,
        what="pod Succeeded",
    )
    on_node = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=compute-1").items
    assert [p.metadata.labels["job-name"] for p in on_node] == ["fs"]
    assert core.list_pod_for_all_namespaces(field_selector="spec.nodeName=compute-2").items == []
    with pytest.raises(ApiException) as ei:
        core.list_namespaced_pod("default", field_selector="spec.bogus=1")
    assert ei.value.status == 400


def test_errors(sim: SimHandle, core: client.CoreV1Api, batch: client.BatchV1Api) -> None:
    with pytest.raises(ApiException) as ei:
        batch.read_namespaced_job("nope", "default")
    body = _status(ei.value)
    assert ei.value.status == 404 and body["reason"] == "NotFound"
    assert body["message"] == 'jobs.batch "nope" not found'
    assert body["details"] == {"name": "nope", "group": "batch", "kind": "jobs"}
    with pytest.raises(ApiException) as ei:
        core.read_namespaced_pod("nope", "default")
    assert ei.value.status == 404 and _status(ei.value)["message"] == 'pods "nope" not found'

    body_ok = job_body("dup", [{"name": "c", "image": "busybox"}])
    batch.create_namespaced_job("default", body_ok)
    with pytest.raises(ApiException) as ei:
        batch.create_namespaced_job("default", body_ok)
    assert ei.value.status == 409 and _status(ei.value)["reason"] == "AlreadyExists"
    assert _status(ei.value)["message"] == 'jobs.batch "dup" already exists'

    long_name = "x" * 64
    with pytest.raises(ApiException) as ei:
        batch.create_namespaced_job(
            "default", job_body(long_name, [{"name": "c", "image": "busybox"}])
        )
    st = _status(ei.value)
    assert ei.value.status == 422 and st["reason"] == "Invalid"
    assert st["details"]["causes"][0]["field"] == "metadata.name"
    assert "must be no more than 63 characters" in st["message"]

    with pytest.raises(ApiException) as ei:
        batch.create_namespaced_job(
            "default", job_body("Bad_Name", [{"name": "c", "image": "busybox"}])
        )
    assert ei.value.status == 422 and "RFC 1123" in _status(ei.value)["message"]

    with pytest.raises(ApiException) as ei:
        batch.create_namespaced_job("default", job_body("noimg", [{"name": "c"}]))
    st = _status(ei.value)
    assert ei.value.status == 422
    assert st["details"]["causes"][0]["field"] == "spec.template.spec.containers[0].image"

    with pytest.raises(ApiException) as ei:
        batch.create_namespaced_job(
            "default",
            job_body("rp", [{"name": "c", "image": "x"}], pod={"restartPolicy": "Always"}),
        )
    assert ei.value.status == 422
    assert (
        'Unsupported value: "Always": supported values: "OnFailure", "Never"'
        in _status(ei.value)["message"]
    )

    code, _, st = _raw(
        sim, "POST", "/apis/batch/v1/namespaces/default/jobs", b'{"metadata": {"name": '
    )
    assert code == 400 and st["reason"] == "BadRequest" and st["kind"] == "Status"

    with pytest.raises(ApiException) as ei:
        batch.create_namespaced_job("ghost", job_body("g", [{"name": "c", "image": "x"}]))
    assert ei.value.status == 404 and _status(ei.value)["message"] == 'namespaces "ghost" not found'


def test_job_defaults_and_pod_shape(
    sim: SimHandle, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    job = batch.create_namespaced_job(
        "default", job_body("defaults", [{"name": "c", "image": "redis:7"}])
    )
    assert job.spec.backoff_limit == 6 and job.spec.completions == 1 and job.spec.parallelism == 1
    assert job.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
    uid = job.metadata.uid
    pods = wait_for(
        lambda: core.list_namespaced_pod("default", label_selector="job-name=defaults").items
    )
    pod = pods[0]
    assert (
        pod.metadata.name.startswith("defaults-") and len(pod.metadata.name) == len("defaults-") + 5
    )
    ref = pod.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller) == ("Job", "defaults", uid, True)
    assert pod.metadata.labels["batch.kubernetes.io/controller-uid"] == uid
    done = wait_for(
        lambda: (j := batch.read_namespaced_job("defaults", "default")).status.succeeded and j
    )
    conds = [c.type for c in done.status.conditions]
    assert conds == ["SuccessCriteriaMet", "Complete"] and done.status.completion_time is not None
    assert (
        batch.create_namespaced_job(
            "default", job_body("latest", [{"name": "c", "image": "nginx"}])
        )
        .spec.template.spec.containers[0]
        .image_pull_policy
        == "Always"
    )


def test_list_pagination_and_resource_version(core: client.CoreV1Api) -> None:
    first = core.list_node(limit=20)
    assert len(first.items) == 20 and first.metadata._continue
    assert first.metadata.remaining_item_count == 30
    rest = core.list_node(limit=100, _continue=first.metadata._continue)
    names = [n.metadata.name for n in first.items + rest.items]
    assert len(set(names)) == 50 and rest.metadata._continue is None
    rv1 = int(core.list_namespace().metadata.resource_version)
    core.create_namespace({"metadata": {"name": "team-a"}})
    rv2 = int(core.list_namespace().metadata.resource_version)
    assert rv2 > rv1


def test_delete_propagation(
    sim: SimHandle, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    for name in ("orphan", "bg", "fg"):
        batch.create_namespaced_job("default", job_body(name, [{"name": "c", "image": "busybox"}]))
    for name in ("orphan", "bg", "fg"):
        wait_for(
            lambda n=name: core.list_namespaced_pod("default", label_selector=f"job-name={n}").items
        )

    # batch/v1 defaults to Orphan (with the apiserver's warning): the pod stays, unowned.
    code, headers, _ = _raw(sim, "DELETE", "/apis/batch/v1/namespaces/default/jobs/orphan")
    assert code == 200 and "child pods are preserved" in headers.get("Warning", "")
    left = core.list_namespaced_pod("default", label_selector="job-name=orphan").items
    assert len(left) == 1 and not left[0].metadata.owner_references

    batch.delete_namespaced_job("bg", "default", propagation_policy="Background")
    wait_for(
        lambda: not core.list_namespaced_pod("default", label_selector="job-name=bg").items,
        what="bg pods gone",
    )

    batch.delete_namespaced_job("fg", "default", propagation_policy="Foreground")
    wait_for(
        lambda: not core.list_namespaced_pod("default", label_selector="job-name=fg").items,
        what="fg pods gone",
    )
    wait_for(
        lambda: (
            not [j for j in batch.list_namespaced_job("default").items if j.metadata.name == "fg"]
        ),
        what="fg job gone",
    )


def test_deletecollection_by_label(
    sim: SimHandle, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    for i in range(3):
        body = job_body(f"dc-{i}", [{"name": "c", "image": "busybox"}])
        body["metadata"]["labels"] = {"app": "ips", "batch": "one" if i < 2 else "two"}
        batch.create_namespaced_job("default", body)
    batch.delete_collection_namespaced_job(
        "default", label_selector="batch=one", propagation_policy="Background"
    )
    remaining = [j.metadata.name for j in batch.list_namespaced_job("default").items]
    assert remaining == ["dc-2"]
    wait_for(
        lambda: (
            {p.metadata.labels["job-name"] for p in core.list_namespaced_pod("default").items}
            == {"dc-2"}
        ),
        what="only dc-2's pod left",
    )


def test_events_are_namespaced_and_filterable(
    sim: SimHandle, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    batch.create_namespaced_job("default", job_body("ev", [{"name": "c", "image": "busybox"}]))
    wait_for(lambda: batch.read_namespaced_job("ev", "default").status.succeeded)
    pod = core.list_namespaced_pod("default", label_selector="job-name=ev").items[0]
    md = pod.metadata
    sel = f"involvedObject.name={md.name},involvedObject.namespace=default"
    sel += f",involvedObject.uid={md.uid}"
    reasons = [e.reason for e in core.list_namespaced_event("default", field_selector=sel).items]
    assert {"Scheduled", "Pulling", "Pulled", "Created", "Started"} <= set(reasons)
    job_events = core.list_namespaced_event(
        "default", field_selector="involvedObject.kind=Job"
    ).items
    assert {e.reason for e in job_events} >= {"SuccessfulCreate", "Completed"}
    assert core.list_namespaced_event("kube-system").items == []


def test_pod_create_and_graceful_delete(sim: SimHandle, core: client.CoreV1Api) -> None:
    pod = {
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "web", "image": "nginx:latest"}]},
    }
    created = core.create_namespaced_pod("default", pod)
    assert created.spec.restart_policy == "Always" and created.status.phase == "Pending"
    running = wait_for(
        lambda: (p := core.read_namespaced_pod("web", "default")).status.phase == "Running" and p
    )
    assert running.status.container_statuses[0].ready is True  # restartPolicy Always: stays up
    assert running.spec.node_name and running.status.pod_ip
    deleted = core.delete_namespaced_pod("web", "default")
    assert deleted.metadata.deletion_timestamp is not None
    wait_for(
        lambda: not core.list_namespaced_pod("default", field_selector="metadata.name=web").items
    )
    with pytest.raises(ApiException) as ei:
        core.delete_namespaced_pod("web", "default")
    assert ei.value.status == 404
