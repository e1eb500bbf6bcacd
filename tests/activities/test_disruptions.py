"""A pod the cluster removed: each DisruptionTarget reason (issue 12, item 2).

Condition messages as Kubernetes writes them: pod GC `PodGC: node no longer exists`
(pkg/controller/podgc/gc_controller.go), taint manager `Taint manager: deleting due to NoExecute
taint` (pkg/controller/tainteviction/taint_eviction.go), Eviction API `Eviction API: evicting`
(pkg/registry/core/pod/storage/eviction.go), scheduler `default-scheduler: preempting to
accommodate a higher priority pod` (pkg/scheduler/framework/preemption/preemption.go), kubelet
eviction `Evicted` / `The node was low on resource: ...` (pkg/kubelet/eviction/helpers.go).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from activities.classify import Verdict, classify_pod
from common.models import FailureReason
from tests.activities.podshapes import (
    APP,
    NOW,
    RATE,
    UNKNOWN_137,
    deleted_at_deadline,
    pull_pod,
    waiting,
)

pytestmark = pytest.mark.unit


# --- 2. The other disruptions -------------------------------------------------------------------


def disrupted(reason: str, message: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    pod = deleted_at_deadline(pull_pod([APP]))
    pod["status"]["containerStatuses"] = [
        {"name": "pull-0", "image": APP, "state": copy.deepcopy(UNKNOWN_137)}
    ]
    pod["status"]["conditions"].append(
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": reason,
            "message": message,
            "lastTransitionTime": "2026-12-02T05:00:30Z",
        }
    )
    pod["status"].update(status or {})
    return pod


@pytest.mark.parametrize(
    ("reason", "message", "status", "expected", "says"),
    [
        ("DeletionByPodGC", "PodGC: node no longer exists", {},
         FailureReason.NODE_GONE, "the node was deleted"),
        ("DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint", {},
         FailureReason.NODE_NOT_READY, "NoExecute taint"),
        ("EvictionByEvictionAPI", "Eviction API: evicting", {},
         FailureReason.EVICTED, "node drain"),
        ("PreemptionByScheduler",
         "default-scheduler: preempting to accommodate a higher priority pod", {},
         FailureReason.PREEMPTED, "PRIORITY_CLASS_NAME"),
        ("TerminationByKubelet",
         "The node was low on resource: ephemeral-storage. Threshold quantity: 10057513974, "
         "available: 9670764Ki.",
         {"reason": "Evicted", "message": "The node was low on resource: ephemeral-storage."},
         FailureReason.EVICTED, "node-pressure eviction"),
    ],
)  # fmt: skip
def test_each_disruption_has_its_reason_and_a_clear_message(
    reason: str, message: str, status: dict[str, Any], expected: FailureReason, says: str
) -> None:
    v = classify_pod(disrupted(reason, message, status), now=NOW, unschedulable_grace=60)
    assert (v.done, v.ok, v.reason) == (True, False, expected)
    assert says in v.message and message[:40] in v.message


def test_a_disruption_seen_before_the_deletion_already_decides() -> None:
    """The scheduler patches the condition, then deletes: the first event has no stamp yet."""
    pod = disrupted(
        "PreemptionByScheduler",
        "default-scheduler: preempting to accommodate a higher priority pod",
    )
    del pod["metadata"]["deletionTimestamp"]
    pod["status"]["phase"] = "Pending"
    pod["status"]["containerStatuses"] = [waiting("pull-0", APP, "ContainerCreating", "")]
    assert classify_pod(pod, now=NOW, unschedulable_grace=60).reason == FailureReason.PREEMPTED


def test_a_kubelet_eviction_without_the_condition_is_evicted() -> None:
    """Before DisruptionTarget (Kubernetes < 1.26) only status.reason says so."""
    pod = pull_pod([APP], phase="Failed")
    pod["status"].update(
        reason="Evicted", message="The node was low on resource: memory. Threshold quantity: 100Mi."
    )
    pod["status"]["containerStatuses"] = [
        {"name": "pull-0", "image": APP, "state": copy.deepcopy(UNKNOWN_137)}
    ]
    v = classify_pod(pod, now=NOW, unschedulable_grace=60)
    assert (v.done, v.reason) == (True, FailureReason.EVICTED)
    assert "low on resource: memory" in v.message


def test_an_unknown_disruption_is_left_to_the_job() -> None:
    pod = disrupted(
        "DeletionByDeviceTaintManager", "Device taint manager: deleting due to NoExecute taint"
    )
    assert classify_pod(pod, now=NOW, unschedulable_grace=60) == Verdict(done=False)


def test_a_disruption_condition_reset_to_false_is_ignored() -> None:
    """The disruption controller resets a DisruptionTarget that was never acted on."""
    pod = pull_pod([APP])
    pod["status"]["containerStatuses"] = [waiting("pull-0", APP, "ErrImagePull", RATE)]
    pod["status"]["conditions"].append(
        {"type": "DisruptionTarget", "status": "False", "reason": "EvictionByEvictionAPI"}
    )
    assert classify_pod(pod, now=NOW, unschedulable_grace=60).reason == FailureReason.RATE_LIMITED
