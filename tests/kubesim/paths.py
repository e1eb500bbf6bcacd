"""Drive kubesim through each path of issue 11 and capture the objects it serves on the way.

Used by the golden-fixture test (tests/fixtures/real/): every captured object's shape must match
its fixture. Each path's object is the last version written that satisfies its predicate."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client

from kubesim.testing import SimHandle
from tests.kubesim.conftest import job_body, job_done, job_pods, wait_for

SLOW = "registry.example.com/slow:1"
MISSING_HUB = "docker.io/acme/missing:1"
AMD64_ONLY = "registry.example.com/amd64-only:1"
RESERVED = "registry.example.com/reserved:1"

SCENARIO: dict[str, Any] = {
    "nodeGroups": [
        {"name": "a", "count": 6},
        {"name": "arm", "count": 1, "arch": "arm64"},
    ],
    "images": [
        {"name": SLOW, "pullSeconds": 100000},
        {"name": MISSING_HUB, "notFound": True},
        {"name": AMD64_ONLY, "platforms": ["amd64"]},
        {"name": RESERVED, "createFailures": 1000},
    ],
    "namespaces": ["secure"],
    "defaults": {"tokenAuthRegistries": ["docker.io"]},
    "admission": {
        "priorityClasses": ["prewarm"],
        "quotas": [{"name": "compute-quota", "namespace": "quota", "pods": 0}],
        "podSecurityEnforce": {"secure": "restricted"},
        "webhooks": [
            {"name": "registry-allowlist.example.com", "deniedImagePrefixes": ["denied.io/"]}
        ],
    },
    "controlPlane": {"podGcQuarantineSeconds": 5, "nodeMonitorGracePeriodSeconds": 5},
}
SCENARIO["namespaces"].append("quota")

Pred = Callable[[str, dict[str, Any]], bool]


def _conds(o: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (o.get("status") or {}).get("conditions") or []}


def _cstate(o: dict[str, Any]) -> dict[str, Any]:
    cs = (o.get("status") or {}).get("containerStatuses") or [{}]
    return dict(cs[0].get("state") or {})


def _named(prefix: str) -> Callable[[dict[str, Any]], bool]:
    return lambda o: str(o["metadata"].get("name", "")).startswith(prefix + "-")


def _event(job: str, reason: str) -> Pred:
    return lambda k, o: (
        k == "Event" and o["involvedObject"]["name"] == job and o["reason"] == reason
    )


PATHS: dict[str, Pred] = {
    # 1. a deleted pod turns Failed (TerminatePod) before removal
    "deleted.pod": lambda k, o: (
        k == "Pod"
        and _named("del")(o)
        and o["status"].get("phase") == "Failed"
        and "terminated" in _cstate(o)
    ),
    # 1b. the Job activeDeadlineSeconds path
    "deadline-terminating.job": lambda k, o: (
        k == "Job"
        and o["metadata"]["name"] == "dl"
        and list(_conds(o)) == ["FailureTarget"]
        and o["status"].get("terminating") == 1
    ),
    "deadline.job": lambda k, o: (
        k == "Job" and o["metadata"]["name"] == "dl" and "Failed" in _conds(o)
    ),
    "deadline.pod": lambda k, o: (
        k == "Pod" and _named("dl")(o) and o["status"].get("phase") == "Failed"
    ),
    "deadline.event": _event("dl", "DeadlineExceeded"),
    # 2. pod GC of a pod on a deleted node
    "podgc.pod": lambda k, o: k == "Pod" and _named("gc")(o) and "DisruptionTarget" in _conds(o),
    # 3. node lifecycle and taint eviction
    "unreachable.node": lambda k, o: (
        k == "Node"
        and o["metadata"]["name"] == "a-5"
        and _conds(o).get("Ready", {}).get("status") == "Unknown"
    ),
    "evicted.pod": lambda k, o: (
        k == "Pod"
        and _named("ev")(o)
        and "DisruptionTarget" in _conds(o)
        and bool(o["metadata"].get("deletionTimestamp"))
        and o["status"].get("phase") != "Failed"
    ),
    "evicted-terminated.pod": lambda k, o: (
        k == "Pod" and _named("ev")(o) and o["status"].get("phase") == "Failed"
    ),
    # 4. admission refusals
    "refused.job": lambda k, o: k == "Job" and o["metadata"]["name"] == "pc",
    "priorityclass.event": _event("pc", "FailedCreate"),
    "quota.event": _event("qt", "FailedCreate"),
    "podsecurity.event": _event("ps", "FailedCreate"),
    "webhook.event": _event("wh", "FailedCreate"),
    # 6. kubelet strings
    "imagepullbackoff.pod": lambda k, o: (
        k == "Pod"
        and _named("hub")(o)
        and _cstate(o).get("waiting", {}).get("reason") == "ImagePullBackOff"
    ),
    "insufficient-scope.pod": lambda k, o: (
        k == "Pod"
        and _named("hub")(o)
        and _cstate(o).get("waiting", {}).get("reason") == "ErrImagePull"
    ),
    "platform.pod": lambda k, o: (
        k == "Pod"
        and _named("plat")(o)
        and _cstate(o).get("waiting", {}).get("reason") == "ErrImagePull"
    ),
    "createcontainererror.pod": lambda k, o: (
        k == "Pod"
        and _named("cce")(o)
        and _cstate(o).get("waiting", {}).get("reason") == "CreateContainerError"
    ),
}


def run_paths(sim: SimHandle) -> dict[str, dict[str, Any]]:
    captured: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def grab(kind: str) -> Callable[[str, Any, Any], None]:
        def fn(_type: str, entry: Any, _prev: Any) -> None:
            obj = json.loads(entry.raw)
            with lock:
                for name, pred in PATHS.items():
                    if pred(kind, obj):
                        captured[name] = obj

        return fn

    for kind in ("Node", "Pod", "Job", "Event"):
        sim.call(lambda k=kind: sim.cluster.store.listen(k, grab(k)))  # type: ignore[misc]
    batch = client.BatchV1Api(client.ApiClient(client.Configuration(host=sim.url)))
    core = client.CoreV1Api(client.ApiClient(client.Configuration(host=sim.url)))

    def job(name: str, image: str, node: str, ns: str = "default", **spec: Any) -> None:
        batch.create_namespaced_job(
            ns, job_body(name, [{"name": "c", "image": image}], node=node, **spec)
        )

    job("del", SLOW, "a-1")
    job("dl", SLOW, "a-2", activeDeadlineSeconds=3)
    job("gc", SLOW, "a-4")
    job("ev", SLOW, "a-5")
    job("pc", "busybox", "a-1", pod={"priorityClassName": "high-priority"})
    job("qt", "busybox", "a-1", ns="quota")
    job("ps", "busybox", "a-1", ns="secure")
    job("wh", "denied.io/team/app:1", "a-1")
    job("hub", MISSING_HUB, "a-3")
    job("plat", AMD64_ONLY, "arm-1")
    job("cce", RESERVED, "a-6")
    wait_for(lambda: job_pods(sim, "del") and job_pods(sim, "gc") and job_pods(sim, "ev"))
    wait_for(lambda: job_pods(sim, "del")[0]["status"].get("startTime"), what="del started")
    core.delete_namespaced_pod(job_pods(sim, "del")[0]["metadata"]["name"], "default")
    wait_for(lambda: job_done(sim, "dl"), what="deadline")
    sim.delete_node("a-4")
    sim.set_node_ready("a-5", False)
    wait_for(lambda: not job_pods(sim, "gc"), what="pod GC")
    wait_for(lambda: "evicted.pod" in captured, timeout=20, what="taint eviction")
    sim.set_node_ready("a-5", True)
    wait_for(lambda: "evicted-terminated.pod" in captured, what="terminated after eviction")
    wait_for(lambda: len(captured) == len(PATHS), timeout=20, what=f"all of {list(PATHS)}")
    with lock:
        return dict(captured)
