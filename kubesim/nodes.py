"""Nodes: bootstrap (namespaces, secrets, the scenario's nodes), nodes that join later, the
kubelet's node status (images), readiness, cordon and deletion.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

from kubesim import images as img
from kubesim import (
    jobs,
    node_lifecycle,
    podgc,
    scheduler,
    timeline,
)
from kubesim.node_objects import build_nodes
from kubesim.state import (
    NodeState,
)
from kubesim.store import now_iso

if TYPE_CHECKING:
    from kubesim.cluster import Cluster

# Each node's status updates run at its own phase of the period, from its name (fixed, so runs
# repeat); a prime number of buckets spreads names like compute-1..compute-5000 evenly.
STATUS_PHASE_BUCKETS = 997


def populate(cluster: Cluster, nodes: int | None = None) -> None:
    cluster.loop = asyncio.get_running_loop()
    scenario = cluster.scenario if nodes is None else cluster.scenario.scaled(nodes)
    created = now_iso()
    for namespace in dict.fromkeys(["default", "kube-system", *scenario.namespaces]):
        cluster.store.create(
            "Namespace",
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": namespace,
                    "labels": {"kubernetes.io/metadata.name": namespace},
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            },
        )
    for s in scenario.secrets:
        cluster.store.create(
            "Secret",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": s.name, "namespace": s.namespace},
                "type": s.type,
                "data": {".dockerconfigjson": "eyJhdXRocyI6e319"},
            },
        )
    for node in build_nodes(scenario, cluster.seed, created):
        add_node_object(cluster, node)
    cluster.store.listen("Pod", functools.partial(jobs.on_pod_event, cluster))
    timeline.start(cluster)


def add_node_object(cluster: Cluster, node: dict[str, Any]) -> None:
    meta = node.pop("_kubesim")
    cluster.node_index += 1
    ready = asyncio.Event()
    node_state = NodeState(node["metadata"]["name"], meta["group"], meta["bandwidth"], ready)
    node_state.reachable.set()
    node_state.disk_pressure = any(
        c["type"] == "DiskPressure" and c["status"] == "True" for c in node["status"]["conditions"]
    )
    if node["status"]["conditions"][-1]["status"] == "True":
        ready.set()
    else:
        node_state.down.set()
    for ref in meta["warm"]:
        node_state.images[img.normalize(ref)] = cluster.scenario.image(ref).size
    node["status"]["images"] = status_images(cluster, node_state)
    cluster.nodes[node_state.name] = node_state
    prefix, _, index = node_state.name.rpartition("-")
    if index.isdigit():
        cluster.name_high[prefix] = max(cluster.name_high.get(prefix, 0), int(index))
    cluster.store.create("Node", node)


def add_nodes(cluster: Cluster, count: int, group: str | None = None) -> list[str]:
    """Nodes that join later: `count` more nodes shaped like `group` (default: the first),
    Ready at once (autoscaler.py models nodes that join NotReady)."""
    names = []
    for node in joining_nodes(cluster, count, group):
        add_node_object(cluster, node)
        names.append(node["metadata"]["name"])
    scheduler.retry_unschedulable(cluster)
    return names


def joining_nodes(cluster: Cluster, count: int, group: str | None = None) -> list[dict[str, Any]]:
    """`count` new Node objects shaped like `group` (default: the first), not yet stored. Names
    go on from the highest the group ever had, so a deleted node's name is never reused."""
    groups = {g.name: g for g in cluster.scenario.node_groups}
    base = groups[group] if group else cluster.scenario.node_groups[0]
    prefix = base.name_prefix or base.name
    start = cluster.name_high.get(prefix, 0) + 1
    joining = base.model_copy(
        update={
            "count": count,
            "not_ready": 0,
            "cordoned": 0,
            "not_ready_fraction": 0.0,
            "cordoned_fraction": 0.0,
            "disk_pressure": 0,
            "disk_pressure_fraction": 0.0,
            "images": [],
        }
    )
    joining_scenario = cluster.scenario.model_copy(update={"node_groups": [joining]})
    built = build_nodes(joining_scenario, cluster.seed + cluster.node_index, now_iso())
    for node in built:
        old = node["metadata"]["name"]
        idx = int(old.rsplit("-", 1)[1]) - 1 + start
        name = f"{prefix}-{idx}"
        node["metadata"]["name"] = name
        node["metadata"]["labels"]["kubernetes.io/hostname"] = name
        node["status"]["addresses"][1]["address"] = name
        node["spec"]["providerID"] = f"kubesim://{name}"
    return built


def status_images(cluster: Cluster, node_state: NodeState) -> list[dict[str, Any]]:
    """The kubelet's view: biggest first, capped at nodeStatusMaxImages."""
    ordered = sorted(node_state.images.items(), key=lambda kv: kv[1], reverse=True)
    return [
        {"names": img.image_names(ref, node_state.digests.get(ref)), "sizeBytes": size}
        for ref, size in ordered[: cluster.scenario.defaults.max_images]
    ]


def node_status_soon(cluster: Cluster, node_state: NodeState) -> None:
    """The kubelet reports images in its periodic node status update, not per pull."""
    if node_state.status_pending:
        return
    node_state.status_pending = True
    defaults = cluster.scenario.defaults
    # The image GC manager refreshes its image list every imageCacheRefreshSeconds; the
    # next node status update after that carries it (per-node phases, as on real nodes).
    phase = (sum(node_state.name.encode()) % STATUS_PHASE_BUCKETS) / STATUS_PHASE_BUCKETS
    now = cluster.now()
    ready_at = now
    if defaults.image_cache_refresh_seconds > 0:
        period = defaults.image_cache_refresh_seconds
        offset = phase * period
        ready_at = now + (period - (now - offset) % period)
    if defaults.node_status_update_seconds > 0:
        period = defaults.node_status_update_seconds
        offset = phase * period
        ready_at += period - (ready_at - offset) % period
    cluster.later(ready_at - now, node_status_flush, cluster, node_state)


def node_status_flush(cluster: Cluster, node_state: NodeState) -> None:
    node_state.status_pending = False
    if not node_state.reachable.is_set():
        node_state.status_pending = True  # flushed when the partition heals
        return
    node = node_obj(cluster, node_state.name)
    if node is not None and cluster.nodes.get(node_state.name) is node_state:
        new_images = status_images(cluster, node_state)
        if new_images != node["status"].get("images"):
            node["status"]["images"] = new_images
            cluster.store.update("Node", node)


def node_arch(cluster: Cluster, name: str) -> str:
    node = node_obj(cluster, name)
    labels = (node or {}).get("metadata", {}).get("labels") or {}
    return str(labels.get("kubernetes.io/arch", "amd64"))


def node_obj(cluster: Cluster, name: str) -> dict[str, Any] | None:
    e = cluster.store.get("Node", None, name)
    return e.obj if e else None


def set_node_ready(cluster: Cluster, name: str, ready: bool, mode: str = "unreachable") -> None:
    """The kubelet stops (`unreachable`: the node turns Unknown after the grace period;
    `notReady`: it reports Ready=False at once), is cut off from the API server
    (`partitioned`: Unknown after the grace period, but it keeps pulling) or comes back
    (node_lifecycle.py)."""
    if node_obj(cluster, name) is None or name not in cluster.nodes:
        raise KeyError(name)
    if ready:
        node_lifecycle.kubelet_up(cluster, name)
        scheduler.retry_unschedulable(cluster)
    else:
        node_lifecycle.kubelet_down(cluster, name, mode)


def set_node_cordoned(cluster: Cluster, name: str, cordoned: bool) -> None:
    node = node_obj(cluster, name)
    if node is None:
        raise KeyError(name)
    taints = [
        t for t in node["spec"].get("taints", []) if t["key"] != "node.kubernetes.io/unschedulable"
    ]
    if cordoned:
        node["spec"]["unschedulable"] = True
        taints.append(
            {
                "key": "node.kubernetes.io/unschedulable",
                "effect": "NoSchedule",
                "timeAdded": now_iso(),
            }
        )
    else:
        node["spec"].pop("unschedulable", None)
    set_taints(node, taints)
    cluster.store.update("Node", node)
    if not cordoned:
        scheduler.retry_unschedulable(cluster)


def set_taints(node: dict[str, Any], taints: list[dict[str, Any]]) -> None:
    if taints:
        node["spec"]["taints"] = taints
    else:
        node["spec"].pop("taints", None)


def node_patched(cluster: Cluster, name: str) -> None:
    """After an API write to a node: keep the kubelet's view in step."""
    node = node_obj(cluster, name)
    if node is not None:
        scheduler.retry_unschedulable(cluster)


def delete_node(cluster: Cluster, name: str) -> None:
    if cluster.store.delete("Node", None, name) is None:
        raise KeyError(name)
    node_state = cluster.nodes.pop(name)
    node_state.ready.clear()
    node_state.down.set()
    node_lifecycle.forget(cluster, name)
    podgc.node_deleted(cluster, node_state)
