"""Nodes that join like an autoscaler's (kubesim/autoscaler.py), seen through the real client:
NotReady with startup taints, Ready after a delay, untainted later, deleted on scale-down; the
scenario's schedule; the control endpoints and the `kubesim.testing` helpers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from kubernetes import client, config, watch

from kubesim.scenario import Scenario
from kubesim.testing import SimHandle, start_sim
from tests.kubesim.conftest import job_body, wait_for

pytestmark = pytest.mark.integration

NOT_READY = "node.kubernetes.io/not-ready"
UNINIT = "node.cloudprovider.kubernetes.io/uninitialized"
CA_TAINT = "ignore-taint.cluster-autoscaler.kubernetes.io/agent-not-ready"


def _scenario(**autoscaler: Any) -> dict[str, Any]:
    return {"nodeGroups": [{"name": "pool", "count": 2}], "autoscaler": autoscaler or None}


def _core(sim: SimHandle) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(sim.kubeconfig_path)))


def _http(sim: SimHandle, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        sim.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def _shape(obj: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """(Ready status, sorted (taint key, effect))."""
    ready = next(c["status"] for c in obj["status"]["conditions"] if c["type"] == "Ready")
    taints = sorted((t["key"], t["effect"]) for t in obj["spec"].get("taints") or [])
    return ready, taints


def _node_events(sim: SimHandle, rv: str, name: str) -> list[tuple[str, int, dict[str, Any]]]:
    """Every watch event of node `name` from `rv` on, until its DELETED."""
    seen = []
    stream = watch.Watch().stream(_core(sim).list_node, resource_version=rv, timeout_seconds=20)
    for ev in stream:
        obj = ev["raw_object"]
        if obj["metadata"]["name"] == name:
            seen.append((ev["type"], int(obj["metadata"]["resourceVersion"]), obj))
            if ev["type"] == "DELETED":
                break
    return seen


def test_a_node_joins_not_ready_turns_ready_loses_its_taints_and_leaves() -> None:
    with start_sim(scenario=_scenario(readyJitter=0), time_scale=100) as sim:
        rv = _core(sim).list_node().metadata.resource_version
        [name] = sim.join_nodes(
            1,
            ready_after=3,
            taints_removed_after=2,
            startup_taints=[
                {"key": UNINIT, "value": "true", "effect": "NoSchedule"},
                {"key": CA_TAINT, "effect": "NoSchedule"},
            ],
        )
        assert name == "pool-3"
        wait_for(lambda: sim.autoscaler_report()["untainted"] == 1, what="untainted")
        assert sim.leave_nodes(count=1) == [name]
        events = _node_events(sim, rv, name)

    startup = [(CA_TAINT, "NoSchedule"), (UNINIT, "NoSchedule")]
    assert [(t, _shape(o)) for t, _, o in events] == [
        ("ADDED", ("False", sorted([(NOT_READY, "NoSchedule"), *startup]))),
        (
            "MODIFIED",
            ("False", sorted([(NOT_READY, "NoExecute"), (NOT_READY, "NoSchedule"), *startup])),
        ),
        (
            "MODIFIED",
            ("True", sorted([(NOT_READY, "NoExecute"), (NOT_READY, "NoSchedule"), *startup])),
        ),
        ("MODIFIED", ("True", startup)),
        ("MODIFIED", ("True", [])),
        ("DELETED", ("True", [])),
    ]
    ready = next(c for c in events[0][2]["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "KubeletNotReady" and "cni plugin not initialized" in ready["message"]
    rvs = [r for _, r, _ in events]
    assert rvs == sorted(set(rvs)) and rvs[0] > int(rv)


def test_the_report_keeps_each_joined_nodes_times() -> None:
    with start_sim(scenario=_scenario(readyJitter=0), time_scale=100) as sim:
        sim.join_nodes(2, ready_after=5, taints_removed_after=4)
        wait_for(lambda: sim.autoscaler_report()["untainted"] == 2, what="untainted")
        report = sim.autoscaler_report()
    assert report["joined"] == 2 and report["ready"] == 2 and report["left"] == 0
    for r in report["nodes"]:
        # The clock never fires early: lower bounds only.
        assert r["readyAt"] - r["joinedAt"] >= 5 - 1e-6
        assert r["untaintedAt"] - r["readyAt"] >= 4 - 1e-6
        assert r["readyWall"] >= r["joinedWall"] and r["leftAt"] is None


def test_a_pod_for_a_joining_node_waits_for_its_taints_to_go() -> None:
    with start_sim(scenario=_scenario(readyJitter=0), time_scale=100) as sim:
        # Long enough (1 s real each) for the pod to be tried while the node is still tainted.
        [name] = sim.join_nodes(1, ready_after=100, taints_removed_after=100)
        batch = client.BatchV1Api(
            config.new_client_from_config(config_file=str(sim.kubeconfig_path))
        )
        batch.create_namespaced_job(
            "default", job_body("warm", [{"name": "c", "image": "busybox"}], node=name)
        )

        def pod() -> dict[str, Any] | None:
            pods = sim.objects("pods", "default", "job-name=warm")
            return pods[0] if pods else None

        pending = wait_for(
            lambda: (p := pod()) and p["status"].get("conditions") and p,
            what="pod scheduling attempted",
        )
        assert pending["spec"].get("nodeName") is None  # not on a tainted, NotReady node
        [cond] = pending["status"]["conditions"]
        assert cond["reason"] == "Unschedulable" and "untolerated taint" in cond["message"]
        done = wait_for(
            lambda: (p := pod()) and p["status"].get("phase") == "Succeeded" and p,
            timeout=20,
            what="pod done",
        )
        assert done["spec"]["nodeName"] == name
        report = sim.autoscaler_report()["nodes"][0]
        assert report["untaintedAt"] is not None
        assert (name, "busybox") in sim.pull_counts()
        # The first pull's end is on the report's clock: after the node turned Ready.
        [pull] = [p for p in _http(sim, "GET", "/kubesim/pulls")[1] if p["node"] == name]
        assert pull["firstAt"] >= report["untaintedAt"] >= report["readyAt"]


def test_the_scenario_schedule_joins_and_leaves_without_reusing_names() -> None:
    scenario = _scenario(
        joinEverySeconds=10,
        joinCount=2,
        maxJoins=6,
        readyAfterSeconds=3,
        readyJitter=0,
        taintsRemovedAfterSeconds=2,
        lifetimeSeconds=20,
        lifetimeJitter=0,
        drainSeconds=2,
    )
    with start_sim(scenario=scenario, time_scale=100) as sim:
        rv = _core(sim).list_node().metadata.resource_version
        wait_for(lambda: sim.autoscaler_report()["left"] == 6, timeout=30, what="all left")
        report = sim.autoscaler_report()
        remaining = sorted(n["metadata"]["name"] for n in sim.objects("nodes"))
        last = report["nodes"][-1]["name"]
        events = _node_events(sim, rv, last)
    names = [r["name"] for r in report["nodes"]]
    assert names == [f"pool-{i}" for i in range(3, 9)]
    assert all(r["readyAt"] is not None and r["untaintedAt"] is not None for r in report["nodes"])
    assert remaining == ["pool-1", "pool-2"]
    # Scale-down drains first: the autoscaler's taint, then DELETED.
    assert [t for t, _, _ in events][-2:] == ["MODIFIED", "DELETED"]
    assert ("ToBeDeletedByClusterAutoscaler", "NoSchedule") in _shape(events[-2][2])[1]


def test_a_deleted_nodes_name_is_never_reused() -> None:
    with start_sim(scenario=_scenario(), time_scale=100) as sim:
        [a] = sim.join_nodes(1)
        sim.leave_nodes([a])
        assert sim.join_nodes(1) == ["pool-4"]
        sim.delete_node("pool-4")
        assert sim.add_nodes(1) == ["pool-5"]


def test_control_endpoints_join_leave_and_report() -> None:
    with start_sim(scenario=_scenario(), time_scale=100) as sim:
        code, body = _http(
            sim,
            "POST",
            "/kubesim/autoscaler/join",
            {
                "count": 2,
                # 3 s of real time at scale 100: the taints are still there when read, even on
                # a loaded machine (1 simulated second was 10 ms, and raced the read below).
                "readyAfterSeconds": 300,
                "taintsRemovedAfterSeconds": 1,
                "startupTaints": [{"key": CA_TAINT, "effect": "NoSchedule"}],
            },
        )
        assert code == 200 and body == {"joined": ["pool-3", "pool-4"]}
        node = _core(sim).read_node("pool-3")
        assert {t.key for t in node.spec.taints} == {NOT_READY, CA_TAINT}
        wait_for(lambda: _http(sim, "GET", "/kubesim/autoscaler")[1]["untainted"] == 2, timeout=30)
        assert _http(sim, "POST", "/kubesim/autoscaler/leave", {"count": 1}) == (
            200,
            {"left": ["pool-3"]},
        )
        assert _http(sim, "POST", "/kubesim/autoscaler/leave", {"nodes": ["pool-1"]}) == (
            200,
            {"left": ["pool-1"]},
        )
        report = _http(sim, "GET", "/kubesim/autoscaler")[1]
        assert (report["joined"], report["left"]) == (2, 1)
        assert sorted(n["metadata"]["name"] for n in sim.objects("nodes")) == ["pool-2", "pool-4"]
        # Bad input: 422 naming the field, 404 for a missing node, 400 for a non-object.
        for bad, field in (
            ({"count": 0}, "count"),
            ({"group": "nope"}, "group"),
            ({"readyAfterSeconds": -1}, "readyAfterSeconds"),
            ({"startupTaints": [{"key": "k", "effect": "Sometimes"}]}, "startupTaints"),
            ({"colour": "red"}, "colour"),
        ):
            code, body = _http(sim, "POST", "/kubesim/autoscaler/join", bad)
            assert code == 422 and body["message"].startswith(field), (bad, body)
        assert _http(sim, "POST", "/kubesim/autoscaler/leave", {"nodes": ["ghost"]})[0] == 404
        assert _http(sim, "POST", "/kubesim/autoscaler/leave", {})[0] == 422
        assert _http(sim, "POST", "/kubesim/autoscaler/join", [1])[0] == 400


@pytest.mark.unit
def test_the_scenario_section_is_validated() -> None:
    with pytest.raises(ValueError, match=r"autoscaler\.group"):
        Scenario.model_validate(
            {"nodeGroups": [{"name": "a", "count": 1}], "autoscaler": {"group": "b"}}
        )
    with pytest.raises(ValueError, match="joinEverySeconds"):
        Scenario.model_validate({"autoscaler": {"joinEverySeconds": 0}})
    conf = Scenario.model_validate({"autoscaler": {}}).autoscaler
    assert conf is not None and [t.key for t in conf.startup_taints] == [UNINIT]
