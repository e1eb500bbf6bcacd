"""DiskPressure (kubesim/node_pressure.py): the kubelet's condition, then the node lifecycle
controller's `node.kubernetes.io/disk-pressure:NoSchedule` taint, in the store's history (what a
watch sees), through an unreachable kubelet, and the scheduler's answer to it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from kubesim.cluster import Cluster
from kubesim.node_objects import DISK_PRESSURE_TAINT, build_nodes
from kubesim.scenario import load_scenario
from kubesim.testing import start_sim
from tests.kubesim.conftest import job_body, job_pods, wait_for

SCENARIO: dict[str, Any] = {
    "nodeGroups": [
        {"name": "a", "count": 6, "notReady": 1, "cordoned": 1, "diskPressure": 2},
        {"name": "b", "count": 2},
    ],
    "images": [{"name": "registry.example.com/small:1", "size": "1MiB", "pullSeconds": 1}],
    "controlPlane": {"nodeMonitorGracePeriodSeconds": 5},
}
TIME_SCALE = 1000.0


def cond(node: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in node["status"]["conditions"] if c["type"] == type_)


def pressure_taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in node["spec"].get("taints") or [] if t["key"] == DISK_PRESSURE_TAINT]


def node_events(cluster: Cluster, name: str, rv: int) -> list[tuple[str, dict[str, Any]]]:
    """The Node's watch events since `rv`, as serialized then (what a watcher receives)."""
    return [
        (ev.type, json.loads(ev.entry.raw))
        for ev in cluster.store.events_since("Node", rv)
        if ev.entry.obj["metadata"]["name"] == name
    ]


def kubelet_events(cluster: Cluster, name: str) -> list[str]:
    return [
        e.obj["reason"]
        for e in cluster.store.entries("Event")
        if e.obj["involvedObject"]["name"] == name and e.obj["involvedObject"]["kind"] == "Node"
    ]


async def settle(pred: Any, within: float = 10.0) -> None:
    """Let the simulator's timers run until `pred()` holds (simulated seconds are ms here)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not pred():
        assert loop.time() < deadline, "the simulated timers never got there"
        await asyncio.sleep(0.002)


async def cluster() -> Cluster:
    c = Cluster(load_scenario(SCENARIO), seed=3, time_scale=TIME_SCALE)
    c.populate()
    return c


@pytest.mark.unit
def test_a_group_starts_with_its_disk_pressure_nodes_ready_uncordoned_and_tainted() -> None:
    scenario = load_scenario(SCENARIO)
    nodes = build_nodes(scenario, 3, "2026-01-01T00:00:00Z")
    pressed = [n for n in nodes if cond(n, "DiskPressure")["status"] == "True"]
    assert len(pressed) == 2
    for n in pressed:
        assert cond(n, "Ready")["status"] == "True" and not n["spec"].get("unschedulable")
        assert cond(n, "DiskPressure")["reason"] == "KubeletHasDiskPressure"
        assert [(t["key"], t["effect"]) for t in pressure_taints(n)] == [
            (DISK_PRESSURE_TAINT, "NoSchedule")
        ]
    for n in nodes:
        if n not in pressed:
            assert cond(n, "DiskPressure")["status"] in ("False", "Unknown")
            assert not pressure_taints(n)
    again = build_nodes(scenario, 3, "2026-01-01T00:00:00Z")
    assert [n["metadata"]["name"] for n in pressed] == [
        n["metadata"]["name"] for n in again if cond(n, "DiskPressure")["status"] == "True"
    ]


@pytest.mark.unit
async def test_pressure_writes_the_condition_then_the_taint_and_clearing_removes_both() -> None:
    c = await cluster()
    name = "b-1"
    rv = c.store.rv
    c.set_node_disk_pressure(name, True)
    seen = node_events(c, name, rv)
    # The kubelet's status update, then the node lifecycle controller's taint swap.
    assert [t for t, _ in seen] == ["MODIFIED", "MODIFIED"]
    (_, by_kubelet), (_, by_controller) = seen
    assert cond(by_kubelet, "DiskPressure")["status"] == "True"
    assert cond(by_kubelet, "DiskPressure")["message"] == "kubelet has disk pressure"
    assert not pressure_taints(by_kubelet)
    assert [t["effect"] for t in pressure_taints(by_controller)] == ["NoSchedule"]
    assert int(by_controller["metadata"]["resourceVersion"]) > rv
    assert c.node_obj(name)["status"]["conditions"][-1]["type"] == "Ready"  # Ready stays last
    assert kubelet_events(c, name) == ["NodeHasDiskPressure"]

    rv = c.store.rv
    c.set_node_disk_pressure(name, True)  # no change: no write
    assert node_events(c, name, rv) == []

    c.set_node_disk_pressure(name, False)
    seen = node_events(c, name, rv)
    assert [t for t, _ in seen] == ["MODIFIED", "MODIFIED"]
    (_, by_kubelet), (_, by_controller) = seen
    assert cond(by_kubelet, "DiskPressure")["status"] == "False"
    assert cond(by_kubelet, "DiskPressure")["reason"] == "KubeletHasNoDiskPressure"
    assert pressure_taints(by_kubelet), "the taint goes in the controller's own write"
    assert not pressure_taints(by_controller)
    assert "taints" not in by_controller["spec"]  # no taint left at all on this node
    assert sorted(kubelet_events(c, name)) == ["NodeHasDiskPressure", "NodeHasNoDiskPressure"]


@pytest.mark.unit
async def test_an_unreachable_kubelet_drops_the_taint_and_reports_pressure_when_back() -> None:
    c = await cluster()
    name = "b-2"
    c.set_node_disk_pressure(name, True)
    c.set_node_ready(name, False)  # unreachable: Unknown after the 5 s grace
    await settle(lambda: cond(c.node_obj(name), "Ready")["status"] == "Unknown")
    node = c.node_obj(name)
    assert cond(node, "DiskPressure")["status"] == "Unknown"
    assert not pressure_taints(node)  # DiskPressure Unknown maps to no taint
    assert {t["key"] for t in node["spec"]["taints"]} == {"node.kubernetes.io/unreachable"}

    c.set_node_disk_pressure(name, False)  # meanwhile the disk was freed: nothing to post yet
    assert cond(c.node_obj(name), "DiskPressure")["status"] == "Unknown"
    c.set_node_disk_pressure(name, True)
    c.set_node_ready(name, True)
    node = c.node_obj(name)
    assert cond(node, "DiskPressure")["status"] == "True"
    assert [t["key"] for t in node["spec"]["taints"]] == [DISK_PRESSURE_TAINT]

    c.set_node_ready(name, False, "notReady")  # the kubelet still reports DiskPressure
    node = c.node_obj(name)
    assert cond(node, "DiskPressure")["status"] == "True"
    assert DISK_PRESSURE_TAINT in {t["key"] for t in node["spec"]["taints"]}


@pytest.mark.unit
async def test_a_timeline_step_presses_a_node_and_clears_it_after_its_seconds() -> None:
    scenario = {
        **SCENARIO,
        "timeline": [{"at": 1, "action": "diskPressure", "node": "b-1", "seconds": 2}],
    }
    c = Cluster(load_scenario(scenario), seed=3, time_scale=TIME_SCALE)
    c.populate()
    rv = c.store.rv
    await settle(lambda: len(node_events(c, "b-1", rv)) == 4)
    statuses = [cond(n, "DiskPressure")["status"] for _, n in node_events(c, "b-1", rv)]
    assert statuses == ["True", "True", "False", "False"]  # kubelet, controller, twice
    assert not pressure_taints(c.node_obj("b-1"))


@pytest.mark.integration
def test_control_endpoint_and_the_scheduler_keep_pods_off_until_it_clears() -> None:
    with start_sim(nodes=None, scenario=SCENARIO, time_scale=100) as sim:
        url = f"{sim.url}/kubesim/nodes/b-1/disk-pressure"
        bad = httpx.post(url, json={"diskPressure": "yes"})
        assert bad.status_code == 400 and "diskPressure must be a boolean" in bad.text
        assert httpx.post(f"{sim.url}/kubesim/nodes/zz-9/disk-pressure", json={}).status_code == 404
        node = httpx.post(url, json={"diskPressure": True}).json()
        assert cond(node, "DiskPressure")["status"] == "True"
        assert [t["effect"] for t in pressure_taints(node)] == ["NoSchedule"]

        from kubernetes import client, config

        batch = client.BatchV1Api(config.new_client_from_config(str(sim.kubeconfig_path)))
        image = "registry.example.com/small:1"
        batch.create_namespaced_job("default", job_body("dp", [{"name": "c", "image": image}],
                                                        node="b-1"))  # fmt: skip
        pod = wait_for(
            lambda: next(
                (
                    p
                    for p in job_pods(sim, "dp")
                    if (p["status"].get("conditions") or [{}])[0].get("reason") == "Unschedulable"
                ),
                None,
            ),
            what="an Unschedulable pod",
        )
        assert DISK_PRESSURE_TAINT in pod["status"]["conditions"][0]["message"]
        assert not pod["spec"].get("nodeName")

        sim.set_node_disk_pressure("b-1", False)
        pod = wait_for(
            lambda: next((p for p in job_pods(sim, "dp") if p["spec"].get("nodeName")), None),
            what="the pod bound once the pressure cleared",
        )
        assert pod["spec"]["nodeName"] == "b-1"
