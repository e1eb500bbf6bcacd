"""Schema truth: every object kubesim serves validates against the official Kubernetes OpenAPI
schema (the `kubernetes-validate` package, strict: no unknown fields) and deserializes with the
official client into its V1 model.

The objects are every version of every Node, Pod, Job, Event and Namespace kubesim writes while
it runs through the paths of issue 11 (pulls, back-off, TerminatePod, pod GC, taint eviction,
admission refusals, deadlines), captured from the store as the exact bytes it serves, plus the
List and Status bodies of the API."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

import kubernetes_validate
import pytest
from jsonschema.validators import Draft202012Validator
from kubernetes import client
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

from kubesim.testing import SimHandle, start_sim
from tests.kubesim.conftest import job_body, job_done, job_pods, wait_for

pytestmark = pytest.mark.integration

VERSIONS = ("1.30", "1.33")
MODELS = {
    "Node": "V1Node",
    "Pod": "V1Pod",
    "Job": "V1Job",
    "Event": "CoreV1Event",
    "Namespace": "V1Namespace",
    "Secret": "V1Secret",
    "Status": "V1Status",
    "PodList": "V1PodList",
    "NodeList": "V1NodeList",
    "JobList": "V1JobList",
    "EventList": "CoreV1EventList",
    "NamespaceList": "V1NamespaceList",
}
SLOW = "registry.example.com/slow:1"
MISSING = "registry.example.com/ips-test/not-found:1"

SCENARIO: dict[str, Any] = {
    "nodeGroups": [{"name": "a", "count": 4}, {"name": "b", "count": 2, "arch": "arm64"}],
    "images": [
        {"name": SLOW, "pullSeconds": 100000},
        {"name": MISSING, "notFound": True},
        {"name": "registry.example.com/amd:1", "platforms": ["amd64"]},
    ],
    "secrets": [{"name": "regcred"}],
    "admission": {"priorityClasses": [], "webhooks": [{"deniedImagePrefixes": ["bad.io/"]}]},
    "controlPlane": {"podGcQuarantineSeconds": 5, "nodeMonitorGracePeriodSeconds": 5},
}


def validate_status(obj: dict[str, Any], version: str) -> None:
    """The apiserver serves Status as apiVersion v1, but its schema is meta/v1's (whose
    apiVersion enum lists only the group versions that register it): validate against that
    schema file directly, apiVersion aside."""
    folder = f"kubernetes-json-schema/v{version}.0-local-strict"
    schema = schema_contents(f"{folder}/status-meta-v1.json", version)
    defs = schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
    schema = {**schema, "properties": {**schema["properties"]}}
    schema["properties"]["apiVersion"] = {"enum": ["v1"]}
    Draft202012Validator(schema, registry=registry).validate(obj)


def check(obj: dict[str, Any]) -> None:
    kind = obj["kind"]
    for version in VERSIONS:
        if kind == "Status":
            validate_status(obj, version)
        else:
            kubernetes_validate.validate(obj, version, strict=True)
    model = MODELS[kind]
    api = client.ApiClient()
    out = api._ApiClient__deserialize(obj, model)  # type: ignore[attr-defined]
    assert type(out).__name__ == model
    # round trip: the client's serialization keeps every field kubesim sent
    back = api.sanitize_for_serialization(out)
    assert back.get("metadata", {}).get("name") == obj.get("metadata", {}).get("name")


def _get(sim: SimHandle, path: str, method: str = "GET", body: Any = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        sim.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return dict(json.loads(r.read()))
    except urllib.error.HTTPError as e:
        return dict(json.loads(e.read()))


def exercise(sim: SimHandle) -> None:
    batch = client.BatchV1Api(client.ApiClient(client.Configuration(host=sim.url)))

    def job(name: str, image: str, node: str, **spec: Any) -> None:
        batch.create_namespaced_job(
            "default", job_body(name, [{"name": "c", "image": image}], node=node, **spec)
        )

    job("ok", "busybox", "a-1", ttlSecondsAfterFinished=1000)
    job("nf", MISSING, "a-2")
    job("plat", "registry.example.com/amd:1", "b-1")
    job("dl", SLOW, "a-3", activeDeadlineSeconds=3)
    job("gc", SLOW, "a-4")
    job("ev", SLOW, "b-2")
    job("pc", "busybox", "a-1", pod={"priorityClassName": "nope"})
    job("wh", "bad.io/x:1", "a-1")
    wait_for(lambda: job_done(sim, "ok"), what="ok")
    wait_for(lambda: job_done(sim, "dl"), what="deadline")
    wait_for(lambda: job_pods(sim, "gc") and job_pods(sim, "ev"), what="pods")
    sim.delete_node("a-4")
    sim.set_node_ready("b-2", False)
    sim.set_node_ready("a-2", False, mode="notReady")
    wait_for(lambda: not job_pods(sim, "gc"), what="pod GC")
    # taint eviction of the ev pod: it tolerates unreachable for 300 s
    wait_for(
        lambda: (p := job_pods(sim, "ev")) and p[0]["metadata"].get("deletionTimestamp"),
        timeout=20,
        what="taint eviction",
    )
    sim.set_node_ready("b-2", True)
    wait_for(lambda: not job_pods(sim, "ev"), what="terminated after the kubelet is back")
    sim.set_node_cordoned("a-1", True)
    # DiskPressure: the condition and the node lifecycle controller's taint, on and off
    sim.set_node_disk_pressure("a-3", True)
    sim.set_node_disk_pressure("a-3", False)
    # a node joining like an autoscaler's: NotReady, startup taints, Ready, untainted, gone
    startup = [{"key": "ignore-taint.cluster-autoscaler.kubernetes.io/x", "effect": "NoSchedule"}]
    sim.join_nodes(1, "a", ready_after=1, taints_removed_after=1, startup_taints=startup)
    wait_for(lambda: sim.autoscaler_report()["untainted"] == 1, what="joined node untainted")
    sim.leave_nodes(count=1)


def test_every_served_object_validates_and_deserializes() -> None:
    with start_sim(nodes=None, scenario=SCENARIO, time_scale=100) as sim:
        captured: list[bytes] = []
        lock = threading.Lock()

        def grab(_type: str, entry: Any, _prev: Any) -> None:
            with lock:
                captured.append(entry.raw)

        for kind in ("Node", "Pod", "Job", "Event", "Namespace", "Secret"):
            sim.call(lambda k=kind: sim.cluster.store.listen(k, grab))  # type: ignore[misc]
        for kind in ("Node", "Namespace", "Secret"):  # objects written before we listened
            for e in list(sim.cluster.store.entries(kind)):
                captured.append(e.raw)
        exercise(sim)
        with lock:
            objs = [json.loads(raw) for raw in captured]
        kinds = {o["kind"] for o in objs}
        assert {"Node", "Pod", "Job", "Event", "Namespace", "Secret"} <= kinds
        reasons = {
            c.get("reason")
            for o in objs
            if o["kind"] == "Pod"
            for c in o["status"].get("conditions", [])
        }
        assert {"DeletionByPodGC", "DeletionByTaintManager"} <= reasons
        for o in objs:
            check(o)
        # Lists, as served (with paging), and Status objects of every error path.
        for path in (
            "/api/v1/pods",
            "/api/v1/nodes?limit=2",
            "/apis/batch/v1/jobs",
            "/api/v1/events",
            "/api/v1/namespaces",
        ):
            check(_get(sim, path))
        statuses = [
            _get(sim, "/api/v1/namespaces/default/pods/ghost"),  # 404
            _get(sim, "/api/v1/namespaces", "POST", {"metadata": {"name": "default"}}),  # 409
            _get(sim, "/api/v1/namespaces/default/pods", "POST", {"metadata": {"name": "x"}}),
            _get(
                sim,
                "/api/v1/namespaces/default/pods",
                "POST",
                {
                    "metadata": {"name": "y"},
                    "spec": {"containers": [{"name": "c", "image": "bad.io/x"}]},
                },
            ),  # webhook 400
            _get(
                sim,
                "/api/v1/namespaces/default/pods",
                "POST",
                {
                    "metadata": {"name": "z"},
                    "spec": {
                        "priorityClassName": "nope",
                        "containers": [{"name": "c", "image": "busybox"}],
                    },
                },
            ),  # 403
        ]
        first = _get(sim, "/api/v1/nodes?limit=2")
        sim.expire_watches()
        statuses.append(
            _get(sim, "/api/v1/nodes?limit=2&continue=" + first["metadata"]["continue"])
        )
        codes = set()
        for st in statuses:
            assert st["kind"] == "Status"
            codes.add(st["code"])
            check(st)
        assert codes == {404, 409, 422, 400, 403, 410}
