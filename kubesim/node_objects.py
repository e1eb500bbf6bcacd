"""The Node objects a scenario expands to, and the Ready condition set they carry.

Placement (which nodes are NotReady, cordoned, under disk pressure or already hold an image)
comes from one `random.Random(seed)`, so the same scenario and seed always give the same cluster.
"""

from __future__ import annotations

import random
from typing import Any

from kubesim.scenario import Scenario

# The node lifecycle controller's NoSchedule taint for DiskPressure=True (kubernetes/kubernetes
# pkg/controller/nodelifecycle/node_lifecycle_controller.go `nodeConditionToTaintKeyStatusMap`).
DISK_PRESSURE_TAINT = "node.kubernetes.io/disk-pressure"


def _pick(rng: random.Random, pool: list[int], count: int, fraction: float, size: int) -> set[int]:
    k = min(len(pool), count + round(fraction * size))
    return set(rng.sample(pool, k)) if k else set()


def _taint(key: str, effect: str, time_added: str | None = None) -> dict[str, Any]:
    t: dict[str, Any] = {"key": key, "effect": effect}
    if time_added:
        t["timeAdded"] = time_added
    return t


def build_nodes(scenario: Scenario, seed: int, created: str) -> list[dict[str, Any]]:
    """Node objects for every group, reproducible for a given seed."""
    rng = random.Random(seed)
    nodes: list[dict[str, Any]] = []
    index = 0
    for group in scenario.node_groups:
        prefix = group.name_prefix or group.name
        ids = list(range(group.count))
        not_ready = _pick(rng, ids, group.not_ready, group.not_ready_fraction, group.count)
        rest = [i for i in ids if i not in not_ready]
        cordoned = _pick(rng, rest, group.cordoned, group.cordoned_fraction, group.count)
        usable = [i for i in rest if i not in cordoned]
        pressure = _pick(
            rng, usable, group.disk_pressure, group.disk_pressure_fraction, group.count
        )
        warm: dict[int, list[str]] = {}
        for img in group.images:
            if img.count is None and img.fraction is None:
                chosen = set(ids)
            else:
                chosen = _pick(rng, ids, img.count or 0, img.fraction or 0.0, group.count)
            for i in sorted(chosen):
                warm.setdefault(i, []).append(img.name)
        for i in ids:
            index += 1
            name = f"{prefix}-{i + 1}"
            zone = group.zones[i % len(group.zones)]
            labels = {
                "beta.kubernetes.io/arch": group.arch,
                "beta.kubernetes.io/os": group.os,
                "kubernetes.io/arch": group.arch,
                "kubernetes.io/os": group.os,
                "kubernetes.io/hostname": name,
                "node.kubernetes.io/instance-type": group.instance_type,
                "topology.kubernetes.io/region": group.region,
                "topology.kubernetes.io/zone": zone,
                "kubesim.io/group": group.name,
                **group.labels,
            }
            taints = [t.model_dump(exclude_none=True) for t in group.taints]
            spec: dict[str, Any] = {
                "podCIDR": f"10.{100 + index // 256}.{index % 256}.0/24",
                "podCIDRs": [f"10.{100 + index // 256}.{index % 256}.0/24"],
                "providerID": f"kubesim://{name}",
            }
            if i in cordoned:
                spec["unschedulable"] = True
                taints.append(_taint("node.kubernetes.io/unschedulable", "NoSchedule", created))
            ready = i not in not_ready
            if i in pressure:
                taints.append(_taint(DISK_PRESSURE_TAINT, "NoSchedule", created))
            if not ready:
                taints.append(_taint("node.kubernetes.io/unreachable", "NoSchedule", created))
                taints.append(_taint("node.kubernetes.io/unreachable", "NoExecute", created))
            if taints:
                spec["taints"] = taints
            ip = f"10.0.{index // 256}.{index % 256}"
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": labels,
                    "annotations": {
                        "node.alpha.kubernetes.io/ttl": "0",
                        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                    },
                    "creationTimestamp": created,
                },
                "spec": spec,
                "status": {
                    "capacity": dict(group.capacity),
                    "allocatable": dict(group.capacity),
                    "conditions": node_conditions(ready, created, disk_pressure=i in pressure),
                    "addresses": [
                        {"type": "InternalIP", "address": ip},
                        {"type": "Hostname", "address": name},
                    ],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                    "nodeInfo": {
                        "architecture": group.arch,
                        "bootID": f"{index:08x}-0000-4000-8000-{rng.getrandbits(48):012x}",
                        "containerRuntimeVersion": "containerd://1.7.27",
                        "kernelVersion": "6.8.0-kubesim",
                        "kubeProxyVersion": scenario.defaults.kubelet_version,
                        "kubeletVersion": scenario.defaults.kubelet_version,
                        "machineID": f"{rng.getrandbits(128):032x}",
                        "operatingSystem": group.os,
                        "osImage": "Ubuntu 24.04.2 LTS",
                        "systemUUID": f"{index:08x}-0000-4000-8000-{rng.getrandbits(48):012x}",
                    },
                    "images": [],
                },
                "_kubesim": {
                    "group": group.name,
                    "bandwidth": group.pull_bandwidth,
                    "warm": warm.get(i, []),
                },
            }
            nodes.append(node)
    return nodes


def node_conditions(ready: bool, ts: str, *, disk_pressure: bool = False) -> list[dict[str, Any]]:
    """The kubelet's conditions (pkg/kubelet/nodestatus/setters.go): `ready` False means the
    node lifecycle controller's Unknown set; `disk_pressure` the eviction manager's verdict."""

    def cond(type_: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": type_,
            "status": status,
            "lastHeartbeatTime": ts,
            "lastTransitionTime": ts,
            "reason": reason,
            "message": message,
        }

    if ready:
        return [
            cond(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            disk_pressure_condition(disk_pressure, ts),
            cond(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ]
    gone = "Kubelet stopped posting node status."
    return [
        cond("MemoryPressure", "Unknown", "NodeStatusUnknown", gone),
        cond("DiskPressure", "Unknown", "NodeStatusUnknown", gone),
        cond("PIDPressure", "Unknown", "NodeStatusUnknown", gone),
        cond("Ready", "Unknown", "NodeStatusUnknown", gone),
    ]


def disk_pressure_condition(pressure: bool, ts: str) -> dict[str, Any]:
    """`DiskPressureCondition` (pkg/kubelet/nodestatus/setters.go): its reasons and messages."""
    if pressure:
        reason, message = "KubeletHasDiskPressure", "kubelet has disk pressure"
    else:
        reason, message = "KubeletHasNoDiskPressure", "kubelet has no disk pressure"
    return {
        "type": "DiskPressure",
        "status": "True" if pressure else "False",
        "lastHeartbeatTime": ts,
        "lastTransitionTime": ts,
        "reason": reason,
        "message": message,
    }
