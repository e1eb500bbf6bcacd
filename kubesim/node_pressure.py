"""DiskPressure: the kubelet reports it, the node lifecycle controller taints the node for it.

- The kubelet's eviction manager decides whether the node is under disk pressure
  (kubernetes/kubernetes `pkg/kubelet/eviction/eviction_manager.go`: `synchronize` turns the
  thresholds met into `nodeConditions`, `IsUnderDiskPressure` reads them). The node status
  setter `DiskPressureCondition` (`pkg/kubelet/nodestatus/setters.go`) writes it: `True`,
  `KubeletHasDiskPressure`, "kubelet has disk pressure" (event `NodeHasDiskPressure`), back to
  `False`, `KubeletHasNoDiskPressure`, "kubelet has no disk pressure" (`NodeHasNoDiskPressure`);
  `lastTransitionTime` moves only when the status does. Here a scenario or test decides instead
  (`set_disk_pressure`); the thresholds, the `evictionPressureTransitionPeriod` and the image
  GC that frees the disk are not simulated.
- The node lifecycle controller's `doNoScheduleTaintingPass`
  (`pkg/controller/nodelifecycle/node_lifecycle_controller.go`) maps each condition through
  `nodeConditionToTaintKeyStatusMap` (DiskPressure `True` -> `node.kubernetes.io/disk-pressure`)
  and swaps the NoSchedule taints it owns to match: a second write to the Node, after the
  kubelet's. DiskPressure `Unknown` (an unreachable kubelet) maps to no taint, so the taint goes
  while the node is unreachable and comes back with the kubelet.
- The scheduler then refuses pods without a matching toleration (scheduler.py, TaintToleration);
  a pull pod has only the task's tolerations, so it stays Pending there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubesim import scheduler
from kubesim.node_objects import DISK_PRESSURE_TAINT, disk_pressure_condition
from kubesim.store import now_iso

if TYPE_CHECKING:
    from kubesim.cluster import Cluster


def under_pressure(conds: list[dict[str, Any]]) -> bool:
    return any(c["type"] == "DiskPressure" and c["status"] == "True" for c in conds)


def with_condition_taint(
    taints: list[dict[str, Any]], conds: list[dict[str, Any]], ts: str
) -> list[dict[str, Any]]:
    """`taints` with the disk-pressure NoSchedule taint present iff the conditions say
    DiskPressure=True (an existing one keeps its timeAdded)."""
    mine = [t for t in taints if (t["key"], t["effect"]) == (DISK_PRESSURE_TAINT, "NoSchedule")]
    rest = [t for t in taints if t not in mine]
    if not under_pressure(conds):
        return rest
    added = {"key": DISK_PRESSURE_TAINT, "effect": "NoSchedule", "timeAdded": ts}
    return rest + (mine[:1] or [added])


def taint_pass(cluster: Cluster, name: str) -> bool:
    """doNoScheduleTaintingPass for the disk-pressure taint: one write if it must change."""
    node = cluster.node_obj(name)
    if node is None:
        return False
    old = node["spec"].get("taints") or []
    new = with_condition_taint(old, node["status"].get("conditions") or [], now_iso())
    if new == old:
        return False
    if new:
        node["spec"]["taints"] = new
    else:
        node["spec"].pop("taints", None)
    cluster.store.update("Node", node)
    return True


def set_disk_pressure(cluster: Cluster, name: str, pressure: bool) -> None:
    """The eviction manager finds the node under disk pressure (or no longer): the kubelet
    posts the condition, then the node lifecycle controller swaps the taint. A kubelet that is
    down or cut off posts nothing; it reports the state when it is back (node_lifecycle.py)."""
    node_state = cluster.nodes.get(name)
    node = cluster.node_obj(name)
    if node_state is None or node is None:
        raise KeyError(name)
    node_state.disk_pressure = pressure
    if not (node_state.ready.is_set() and node_state.reachable.is_set()):
        return
    conds = node["status"].get("conditions") or []
    old = next((c for c in conds if c["type"] == "DiskPressure"), None)
    if old is None or (old["status"] == "True") != pressure:
        ts = now_iso()
        new = disk_pressure_condition(pressure, ts)
        if old is None:
            conds.insert(max(0, len(conds) - 1), new)  # Ready stays last, as the kubelet keeps it
        else:
            old.update(new)
        node["status"]["conditions"] = conds
        cluster.store.update("Node", node)  # the kubelet's node status update
        reason = "NodeHasDiskPressure" if pressure else "NodeHasNoDiskPressure"
        cluster.record_event(
            node,
            "Normal",
            reason,
            f"Node {name} status is now: {reason}",
            component="kubelet",
            host=name,
        )
    taint_pass(cluster, name)
    if not pressure:
        scheduler.retry_unschedulable(cluster)
