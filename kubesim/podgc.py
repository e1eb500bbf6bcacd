"""The pod garbage collector's orphan pass: pods bound to a node that no longer exists.

Follows kubernetes/kubernetes `pkg/controller/podgc/gc_controller.go`: `gcOrphaned` puts a missing
node in quarantine (`quarantineTime`, 40 s), `discoverDeletedNodes` confirms it is still gone, and
`markFailedAndDeletePodWithCondition` patches the pod's status to phase `Failed` with the
condition `DisruptionTarget` (reason `DeletionByPodGC`, message "PodGC: node no longer exists")
before it force-deletes the pod (grace period 0). Container statuses are left as they were: no
kubelet is left to write them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubesim import gc
from kubesim.store import now_iso

if TYPE_CHECKING:
    from kubesim.cluster import Cluster
    from kubesim.state import NodeState

REASON = "DeletionByPodGC"
MESSAGE = "PodGC: node no longer exists"


def disruption_condition(reason: str, message: str) -> dict[str, Any]:
    return {
        "type": "DisruptionTarget",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": now_iso(),
        "reason": reason,
        "message": message,
    }


def set_condition(pod: dict[str, Any], cond: dict[str, Any]) -> None:
    """apipod.UpdatePodCondition: replace the condition of that type, or append it."""
    conds = [c for c in pod["status"].get("conditions", []) if c["type"] != cond["type"]]
    conds.append(cond)
    pod["status"]["conditions"] = conds


def node_deleted(cluster: Cluster, node_state: NodeState) -> None:
    """The node object is gone: its kubelet stops; the pods wait out the quarantine."""
    keys = set(node_state.pods)
    for key in keys:
        ps = cluster.pods.get(key)
        if ps is None:
            continue
        for t in (ps.task, ps.term_task, *ps.tasks):
            if t is not None:
                t.cancel()
    quarantine = cluster.scenario.control_plane.pod_gc_quarantine_seconds
    cluster.later(quarantine, gc_orphans, cluster, node_state.name, keys)


def gc_orphans(cluster: Cluster, node: str, keys: set[tuple[str, str]]) -> None:
    if node in cluster.nodes:
        return  # a node of that name came back: checkIfNodeExists finds it
    for key in sorted(keys):
        e = cluster.store.get("Pod", *key)
        if e is None or e.obj["spec"].get("nodeName") != node:
            continue
        pod = e.obj
        if pod["status"].get("phase") not in ("Succeeded", "Failed"):
            pod["status"]["phase"] = "Failed"
            set_condition(pod, disruption_condition(REASON, MESSAGE))
            ps = cluster.pods.get(key)
            if ps is not None:
                ps.final_phase = "Failed"
            cluster.store.update("Pod", pod)
        gc.remove_pod(cluster, *key)
