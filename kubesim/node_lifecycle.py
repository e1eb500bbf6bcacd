"""Node lifecycle and taint eviction: NotReady is a process, not a switch.

- A kubelet that stops posting status (`unreachable`) changes nothing on the Node at first. After
  `node-monitor-grace-period` (40 s) the node lifecycle controller sets every condition to
  `Unknown` ("Kubelet stopped posting node status.") and adds the `node.kubernetes.io/unreachable`
  NoSchedule and NoExecute taints: kubernetes/kubernetes
  `pkg/controller/nodelifecycle/node_lifecycle_controller.go` (`tryUpdateNodeHealth`,
  `doNoExecuteTaintingPass`, `markNodeForTainting`).
- A kubelet cut off by a network partition (`partitioned`) looks the same from the API, but
  keeps pulling and running; it writes its pods' statuses (and the node's images) when the
  partition heals. Its events in between are lost.
- A kubelet that reports `Ready=False` itself (`notReady`, e.g. the runtime is down) shows at
  once, with the `node.kubernetes.io/not-ready` taints.
- Taint eviction deletes each pod on a node with a NoExecute taint it does not tolerate at once,
  and a pod that tolerates it for `tolerationSeconds` (300 s by DefaultTolerationSeconds) once they
  run out; first it adds the `DisruptionTarget` condition, reason `DeletionByTaintManager`:
  `pkg/controller/tainteviction/taint_eviction.go` (`processPodOnNode`, `getMinTolerationTime`,
  `addConditionAndDeletePod`). The deleted pod stays Terminating while its kubelet is unreachable
  (termination.py waits for the kubelet).
- When the kubelet is back, the conditions and taints return to normal and pending evictions
  are cancelled (`handleNodeUpdate` -> `cancelWorkWithEvent`).
- DiskPressure follows the conditions (node_pressure.py): `Unknown` drops the disk-pressure
  taint, a kubelet that is back reports the eviction manager's verdict again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubesim import kubelet, node_pressure, nodes, podgc
from kubesim.node_objects import node_conditions
from kubesim.store import now_iso

if TYPE_CHECKING:
    from kubesim.cluster import Cluster
    from kubesim.state import PodState

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
EVICT_REASON = "DeletionByTaintManager"
EVICT_MESSAGE = "Taint manager: deleting due to NoExecute taint"


def _not_ready_conditions(ts: str, disk_pressure: bool) -> list[dict[str, Any]]:
    conds = node_conditions(True, ts, disk_pressure=disk_pressure)
    conds[-1].update(
        status="False",
        reason="KubeletNotReady",
        message="container runtime is down",
    )
    return conds


def _set_node(
    cluster: Cluster, name: str, conds: list[dict[str, Any]], taint_key: str | None
) -> None:
    node = cluster.node_obj(name)
    if node is None:
        return
    ts = now_iso()
    node["status"]["conditions"] = conds
    taints = [t for t in node["spec"].get("taints", []) if t["key"] not in (UNREACHABLE, NOT_READY)]
    if taint_key:
        for effect in ("NoSchedule", "NoExecute"):
            taints.append({"key": taint_key, "effect": effect, "timeAdded": ts})
    nodes.set_taints(node, node_pressure.with_condition_taint(taints, conds, ts))
    cluster.store.update("Node", node)
    taint_pass(cluster, name)


def kubelet_down(cluster: Cluster, name: str, mode: str = "unreachable") -> None:
    """The kubelet stops working (or, `partitioned`, keeps working cut off from the API
    server); what the API shows depends on `mode`."""
    node_state = cluster.nodes[name]
    if mode == "partitioned":
        node_state.reachable.clear()
    else:
        node_state.ready.clear()
        node_state.down.set()
    timers = cluster.monitor_timers
    old = timers.pop(name, None)
    if old is not None:
        old.cancel()
    if mode == "notReady":
        conds = _not_ready_conditions(now_iso(), node_state.disk_pressure)
        _set_node(cluster, name, conds, NOT_READY)
        return
    grace = cluster.scenario.control_plane.node_monitor_grace_period_seconds
    timers[name] = cluster.later(grace, _grace_expired, cluster, name)


def _grace_expired(cluster: Cluster, name: str) -> None:
    cluster.monitor_timers.pop(name, None)
    node_state = cluster.nodes.get(name)
    if node_state is None or (node_state.ready.is_set() and node_state.reachable.is_set()):
        return
    _set_node(cluster, name, node_conditions(False, now_iso()), UNREACHABLE)


def kubelet_up(cluster: Cluster, name: str) -> None:
    node_state = cluster.nodes[name]
    t = cluster.monitor_timers.pop(name, None)
    if t is not None:
        t.cancel()
    conds = node_conditions(True, now_iso(), disk_pressure=node_state.disk_pressure)
    _set_node(cluster, name, conds, None)
    node_state.down.clear()
    node_state.ready.set()
    if not node_state.reachable.is_set():
        # The partition heals: the status manager writes what the kubelet did meanwhile.
        node_state.reachable.set()
        for key in sorted(node_state.pods):
            ps = cluster.pods.get(key)
            if ps is not None and ps.dirty:
                kubelet.publish_status(cluster, ps)
        if node_state.status_pending:
            nodes.node_status_flush(cluster, node_state)


def forget(cluster: Cluster, name: str) -> None:
    t = cluster.monitor_timers.pop(name, None)
    if t is not None:
        t.cancel()


def _tolerated_for(tols: list[dict[str, Any]], taints: list[dict[str, Any]]) -> float | None:
    """getMinTolerationTime: 0 = evict now, None = never, else seconds."""
    from kubesim.scheduler import tolerates

    best: float | None = None
    for taint in taints:
        matching = [t for t in tols if tolerates([t], taint)]
        if not matching:
            return 0.0
        for t in matching:
            secs = t.get("tolerationSeconds")
            if secs is not None:
                secs = max(0.0, float(secs))
                best = secs if best is None else min(best, secs)
    return best


def taint_pass(cluster: Cluster, node: str) -> None:
    """Re-evaluate every pod of the node against its NoExecute taints."""
    node_state = cluster.nodes.get(node)
    if node_state is None:
        return
    for key in list(node_state.pods):
        ps = cluster.pods.get(key)
        if ps is not None:
            pod_on_node(cluster, ps)


def pod_on_node(cluster: Cluster, ps: PodState) -> None:
    """processPodOnNode: (re)schedule or cancel the pod's eviction."""
    evictions = cluster.evictions
    old = evictions.pop(ps.key, None)
    if old is not None:
        old.cancel()
    node = cluster.node_obj(ps.node or "")
    pod = cluster.pod_object(ps)
    if node is None or pod is None or pod["metadata"].get("deletionTimestamp"):
        return
    taints = [t for t in node["spec"].get("taints") or [] if t["effect"] == "NoExecute"]
    if not taints:
        return
    wait = _tolerated_for(pod["spec"].get("tolerations") or [], taints)
    if wait is None:
        return
    evictions[ps.key] = cluster.later(wait, _evict, cluster, ps.key)


def _evict(cluster: Cluster, key: tuple[str, str]) -> None:
    cluster.evictions.pop(key, None)
    e = cluster.store.get("Pod", *key)
    if e is None or e.obj["metadata"].get("deletionTimestamp"):
        return
    pod = e.obj
    podgc.set_condition(pod, podgc.disruption_condition(EVICT_REASON, EVICT_MESSAGE))
    cluster.store.update("Pod", pod)
    cluster.delete_pod(*key)
