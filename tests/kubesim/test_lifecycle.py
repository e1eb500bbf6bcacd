"""Control-plane lifecycles observed through the real client's watch: kubelet TerminatePod, the
Job controller's terminal conditions, pod GC, node lifecycle and taint eviction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes import client, config, watch

from kubesim.testing import SimHandle, start_sim
from tests.kubesim.conftest import job_body, job_pods, wait_for

pytestmark = pytest.mark.integration

SLOW = "registry.example.com/slow:1"
UNKNOWN = {
    "reason": "ContainerStatusUnknown",
    "exitCode": 137,
    "message": "The container could not be located when the pod was terminated",
}


def scenario(**control_plane: Any) -> dict[str, Any]:
    return {
        "nodeGroups": [
            {"name": "a", "count": 3},
            {"name": "b", "count": 2, "arch": "arm64"},
        ],
        "images": [{"name": SLOW, "pullSeconds": 100000}],
        "controlPlane": control_plane,
    }


@contextmanager
def sim_with(time_scale: float = 100, **control_plane: Any) -> Iterator[SimHandle]:
    with start_sim(nodes=None, scenario=scenario(**control_plane), time_scale=time_scale) as s:
        yield s


def apis(sim: SimHandle) -> tuple[client.CoreV1Api, client.BatchV1Api]:
    api = config.new_client_from_config(config_file=str(sim.kubeconfig_path))
    return client.CoreV1Api(api), client.BatchV1Api(api)


def watch_until(
    list_fn: Callable[..., Any],
    rv: str | None,
    done: Callable[[str, dict[str, Any]], bool],
    timeout: int = 20,
    **kw: Any,
) -> list[tuple[str, dict[str, Any]]]:
    """Every (type, raw object) from `rv` on, until `done` says so."""
    seen: list[tuple[str, dict[str, Any]]] = []
    stream = watch.Watch().stream(list_fn, resource_version=rv, timeout_seconds=timeout, **kw)
    for ev in stream:
        seen.append((ev["type"], ev["raw_object"]))
        if done(ev["type"], ev["raw_object"]):
            return seen
    raise AssertionError(f"watch ended before the condition; saw {[t for t, _ in seen]}")


def pulling_pod(sim: SimHandle, batch: client.BatchV1Api, name: str, **spec: Any) -> dict[str, Any]:
    batch.create_namespaced_job(
        "default", job_body(name, [{"name": "c", "image": SLOW}], node="a-1", **spec)
    )
    return wait_for(
        lambda: (p := job_pods(sim, name)) and p[0].get("status", {}).get("startTime") and p[0],
        what="a pulling pod",
    )


def state(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["status"]["containerStatuses"][0]["state"]


def test_deleted_pod_turns_failed_with_container_status_unknown_before_removal() -> None:
    with sim_with() as sim:
        core, batch = apis(sim)
        pod = pulling_pod(sim, batch, "del")
        name = pod["metadata"]["name"]
        rv = core.list_namespaced_pod("default").metadata.resource_version
        core.delete_namespaced_pod(name, "default")
        seen = watch_until(
            core.list_pod_for_all_namespaces,
            rv,
            lambda t, o: t == "DELETED" and o["metadata"]["name"] == name,
            field_selector=f"metadata.name={name}",
        )
        mods = [o for t, o in seen if t == "MODIFIED"]
        assert mods[0]["metadata"].get("deletionTimestamp")
        assert mods[0]["status"]["phase"] == "Pending"  # still waiting: ContainerCreating
        failed = [o for o in mods if o["status"]["phase"] == "Failed"]
        assert failed, "the pod must be written Failed before it goes"
        term = state(failed[-1])["terminated"]
        assert {k: term[k] for k in UNKNOWN} == UNKNOWN
        assert seen[-1][0] == "DELETED" and seen[-1][1]["status"]["phase"] == "Failed"


def test_job_deadline_failure_target_first_failed_once_no_pod_terminates() -> None:
    with sim_with() as sim:
        _core, batch = apis(sim)
        rv = batch.list_namespaced_job("default").metadata.resource_version
        pod = pulling_pod(sim, batch, "dl", activeDeadlineSeconds=5)
        seen = watch_until(
            batch.list_job_for_all_namespaces,
            rv,
            lambda t, o: any(
                c["type"] == "Failed" for c in (o.get("status") or {}).get("conditions", [])
            ),
        )
        with_target = [
            o
            for _, o in seen
            if [c["type"] for c in (o.get("status") or {}).get("conditions", [])]
            == ["FailureTarget"]
        ]
        assert with_target, "FailureTarget comes alone first"
        assert any(o["status"].get("terminating") == 1 for o in with_target)
        final = seen[-1][1]["status"]
        assert [c["type"] for c in final["conditions"]] == ["FailureTarget", "Failed"]
        assert final["conditions"][1]["reason"] == "DeadlineExceeded"
        assert final["terminating"] == 0 and final["failed"] == 1
        assert not job_pods(sim, "dl")
        events = [
            e["reason"]
            for e in sim.objects("events", "default")
            if e["involvedObject"]["uid"] == pod["metadata"]["uid"]
        ]
        assert "Pulling" in events


def test_pods_of_a_deleted_node_are_failed_by_pod_gc_after_quarantine() -> None:
    with sim_with(podGcQuarantineSeconds=300) as sim:
        core, batch = apis(sim)
        pod = pulling_pod(sim, batch, "gc")
        name = pod["metadata"]["name"]
        rv = core.list_namespaced_pod("default").metadata.resource_version
        sim.delete_node("a-1")
        # Within the quarantine (300 s = 3 s real here) the pod is still there, unchanged.
        assert core.read_namespaced_pod(name, "default").status.phase == "Pending"
        seen = watch_until(
            core.list_pod_for_all_namespaces,
            rv,
            lambda t, o: t == "DELETED" and o["metadata"]["name"] == name,
            field_selector=f"metadata.name={name}",
        )
        failed = [o for t, o in seen if t == "MODIFIED" and o["status"]["phase"] == "Failed"]
        assert failed, "Failed before the force delete"
        conds = {c["type"]: c for c in failed[-1]["status"]["conditions"]}
        assert conds["DisruptionTarget"]["reason"] == "DeletionByPodGC"
        assert conds["DisruptionTarget"]["message"] == "PodGC: node no longer exists"
        assert not failed[-1]["metadata"].get("deletionTimestamp")  # forced: no grace period
        # No kubelet wrote the containers: they stay as they were (waiting).
        assert "waiting" in state(failed[-1])


def test_unreachable_node_turns_unknown_after_grace_then_taint_eviction() -> None:
    with sim_with(time_scale=100, nodeMonitorGracePeriodSeconds=300) as sim:
        core, batch = apis(sim)
        pod = pulling_pod(sim, batch, "ev")
        name = pod["metadata"]["name"]
        node_rv = core.list_node().metadata.resource_version
        sim.set_node_ready("a-1", False)
        node = core.read_node("a-1")
        ready = next(c for c in node.status.conditions if c.type == "Ready")
        assert ready.status == "True"  # the grace period has not run out yet
        seen = watch_until(
            core.list_node,
            node_rv,
            lambda t, o: any(
                c["type"] == "Ready" and c["status"] == "Unknown" for c in o["status"]["conditions"]
            ),
            field_selector="metadata.name=a-1",
        )
        node_obj = seen[-1][1]
        ready_c = next(c for c in node_obj["status"]["conditions"] if c["type"] == "Ready")
        assert ready_c["reason"] == "NodeStatusUnknown"
        assert ready_c["message"] == "Kubelet stopped posting node status."
        assert {(t["key"], t["effect"]) for t in node_obj["spec"]["taints"]} == {
            ("node.kubernetes.io/unreachable", "NoSchedule"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
        }
        # DefaultTolerationSeconds: 300 s, then taint eviction marks and deletes the pod.
        tol = [
            t for t in pod["spec"]["tolerations"] if t["key"] == "node.kubernetes.io/unreachable"
        ]
        assert tol and tol[0]["tolerationSeconds"] == 300
        p = wait_for(
            lambda: (
                (o := core.read_namespaced_pod(name, "default")).metadata.deletion_timestamp and o
            ),
            timeout=15,
            what="taint eviction",
        )
        conds = {c.type: c for c in p.status.conditions}
        assert conds["DisruptionTarget"].reason == "DeletionByTaintManager"
        assert conds["DisruptionTarget"].message == "Taint manager: deleting due to NoExecute taint"
        # The kubelet is unreachable: the pod stays Terminating, not Failed, not gone.
        assert p.status.phase == "Pending"
        rv = core.list_namespaced_pod("default").metadata.resource_version
        sim.set_node_ready("a-1", True)
        seen = watch_until(
            core.list_pod_for_all_namespaces,
            rv,
            lambda t, o: t == "DELETED" and o["metadata"]["name"] == name,
            field_selector=f"metadata.name={name}",
        )
        assert seen[-1][1]["status"]["phase"] == "Failed"
        assert state(seen[-1][1])["terminated"]["reason"] == "ContainerStatusUnknown"
        assert "DisruptionTarget" in {c["type"] for c in seen[-1][1]["status"]["conditions"]}


def test_not_ready_kubelet_shows_at_once_and_a_short_flap_is_invisible() -> None:
    with sim_with(nodeMonitorGracePeriodSeconds=100000) as sim:
        core, _ = apis(sim)
        sim.set_node_ready("a-2", False)  # unreachable, but shorter than the grace period
        sim.set_node_ready("a-2", True)
        sim.set_node_ready("a-3", False, mode="notReady")
        a2 = core.read_node("a-2")
        assert not a2.spec.taints
        a3 = core.read_node("a-3")
        ready = next(c for c in a3.status.conditions if c.type == "Ready")
        assert (ready.status, ready.reason) == ("False", "KubeletNotReady")
        assert {t.key for t in a3.spec.taints} == {"node.kubernetes.io/not-ready"}
        sim.set_node_ready("a-3", True)
        assert not core.read_node("a-3").spec.taints


def test_default_toleration_seconds_is_a_setting() -> None:
    with sim_with(defaultTolerationSeconds=30) as sim:
        core, batch = apis(sim)
        pod = pulling_pod(sim, batch, "tol")
        direct = core.create_namespaced_pod(
            "default",
            {"metadata": {"name": "d"}, "spec": {"containers": [{"name": "c", "image": SLOW}]}},
        )
        for tols in (pod["spec"]["tolerations"], direct.to_dict()["spec"]["tolerations"]):
            secs = {t["key"]: t.get("tolerationSeconds", t.get("toleration_seconds")) for t in tols}
            assert secs == {
                "node.kubernetes.io/not-ready": 30,
                "node.kubernetes.io/unreachable": 30,
            }


def test_partitioned_kubelet_keeps_pulling_and_reports_when_it_heals() -> None:
    with start_sim(
        nodes=None,
        scenario={
            "nodeGroups": [{"name": "a", "count": 2}],
            "images": [{"name": "registry.example.com/mid:1", "pullSeconds": 300}],
            "controlPlane": {"nodeMonitorGracePeriodSeconds": 40},
        },
        time_scale=100,
    ) as sim:
        core, batch = apis(sim)
        batch.create_namespaced_job(
            "default",
            job_body("p", [{"name": "c", "image": "registry.example.com/mid:1"}], node="a-1"),
        )
        pod = wait_for(
            lambda: (p := job_pods(sim, "p")) and p[0]["status"].get("startTime") and p[0],
            what="pulling",
        )
        sim.set_node_ready("a-1", False, mode="partitioned")
        wait_for(
            lambda: any(
                c.type == "Ready" and c.status == "Unknown"
                for c in core.read_node("a-1").status.conditions
            ),
            what="Unknown after the grace period",
        )
        # The pull finishes on the node (300 s), but the API does not hear of it.
        wait_for(lambda: ("a-1", "registry.example.com/mid:1") in sim.pull_counts(), what="pull")
        stale = core.read_namespaced_pod(pod["metadata"]["name"], "default")
        assert stale.status.phase == "Pending"
        assert stale.status.container_statuses[0].state.waiting is not None
        sim.set_node_ready("a-1", True)
        wait_for(lambda: job_pods(sim, "p")[0]["status"]["phase"] == "Succeeded", what="healed")
