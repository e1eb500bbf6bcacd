"""A pull pod that the cluster removed, rather than one whose pull or container failed (pure).

Who removes a pod says so in its `DisruptionTarget` condition (status True), written just
before the delete. The reasons, and where Kubernetes sets them:

- `DeletionByPodGC` -> `NodeGone`: the pod garbage collector, when the pod's node no longer
  exists (pkg/controller/podgc/gc_controller.go, gcOrphaned).
- `DeletionByTaintManager` -> `NodeNotReady`: a `NoExecute` taint such as
  `node.kubernetes.io/unreachable` (pkg/controller/tainteviction/taint_eviction.go).
- `EvictionByEvictionAPI` -> `Evicted`: the Eviction API, used by `kubectl drain` and the
  cluster autoscaler (pkg/registry/core/pod/storage/eviction.go).
- `PreemptionByScheduler` -> `Preempted`: the scheduler, to fit a higher-priority pod
  (`PodReasonPreemptionByScheduler`, staging/src/k8s.io/api/core/v1/types.go).
- `TerminationByKubelet` -> `Evicted`: the kubelet, on node pressure or a graceful node shutdown
  (`PodReasonTerminationByKubelet`, the same file).

A kubelet eviction from before the condition existed shows only `status.reason: Evicted`.

Such a pod's containers report how they were stopped, not how the pull went: a container the
kubelet no longer finds becomes `terminated` with reason `ContainerStatusUnknown` and exit code
137 (pkg/kubelet/status/status_manager.go, TerminatePod). So a pod that is being deleted
(`deletionTimestamp`), or that reports `ContainerStatusUnknown`, is never judged by its exit
codes: without a known disruption, the Job (the deadline, a deletion) and the pull error seen
before decide.
"""

from __future__ import annotations

from typing import Any

from common.models import FailureReason

DISRUPTION_TARGET = "DisruptionTarget"
CONTAINER_STATUS_UNKNOWN = "ContainerStatusUnknown"
EVICTED_POD_REASON = "Evicted"

# Each condition reason: the node's failure reason and what it means to an operator.
_DISRUPTIONS: dict[str, tuple[FailureReason, str]] = {
    "DeletionByPodGC": (FailureReason.NODE_GONE, "the node was deleted"),
    "DeletionByTaintManager": (
        FailureReason.NODE_NOT_READY,
        "the node became unreachable or NotReady and its NoExecute taint evicted the pod",
    ),
    "EvictionByEvictionAPI": (
        FailureReason.EVICTED,
        "evicted through the Eviction API (a node drain or the cluster autoscaler)",
    ),
    "PreemptionByScheduler": (
        FailureReason.PREEMPTED,
        "preempted by the scheduler for a higher-priority pod (see PRIORITY_CLASS_NAME)",
    ),
    "TerminationByKubelet": (
        FailureReason.EVICTED,
        "terminated by the kubelet (node-pressure eviction or node shutdown)",
    ),
}


def disruption(pod: dict[str, Any]) -> tuple[FailureReason, str] | None:
    """The reason and message when the cluster removed the pod for a known cause, else None."""
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") != DISRUPTION_TARGET or cond.get("status") != "True":
            continue
        known = _DISRUPTIONS.get(cond.get("reason") or "")
        if known is None:
            return None  # a cause Kubernetes added later: the Job decides
        reason, meaning = known
        detail = cond.get("message") or cond.get("reason")
        return reason, f"{meaning}: {detail}"
    if status.get("reason") == EVICTED_POD_REASON:
        reason, meaning = _DISRUPTIONS["TerminationByKubelet"]
        return reason, f"{meaning}: {status.get('message') or EVICTED_POD_REASON}"
    return None


def stopped_by_the_cluster(pod: dict[str, Any]) -> bool:
    """Being deleted, marked for disruption, or reporting containers the kubelet lost: the
    exit codes then say how the pod was stopped, not how its pulls went."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return True
    status = pod.get("status") or {}
    if any(
        c.get("type") == DISRUPTION_TARGET and c.get("status") == "True"
        for c in status.get("conditions") or []
    ):
        return True
    statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    return any(
        ((cs.get("state") or {}).get("terminated") or {}).get("reason") == CONTAINER_STATUS_UNKNOWN
        for cs in statuses
    )
