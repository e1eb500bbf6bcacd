"""Failure reasons as a real cluster reports them (issue 12, items 1, 2, 5 and 6).

Every pod here is the one IPS creates (the Job template from activities/jobspec.py), with the
status the named Kubernetes component writes; the shapes and strings are quoted from upstream:

- the kubelet's TerminatePod, for a container it no longer finds: terminated, reason
  `ContainerStatusUnknown`, exit code 137 (pkg/kubelet/status/status_manager.go);
- `DisruptionTarget` conditions: pod GC `PodGC: node no longer exists`
  (pkg/controller/podgc/gc_controller.go), taint manager `Taint manager: deleting due to NoExecute
  taint` (pkg/controller/tainteviction/taint_eviction.go), Eviction API `Eviction API: evicting`
  (pkg/registry/core/pod/storage/eviction.go), scheduler `default-scheduler: preempting to
  accommodate a higher priority pod` (pkg/scheduler/framework/preemption/preemption.go), kubelet
  eviction `Evicted` / `The node was low on resource: ...` (pkg/kubelet/eviction/helpers.go);
- pull Events and waiting messages: pkg/kubelet/images/image_manager.go (EnsureImageExists), with
  containerd's errors as its CRI returns them.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from activities.classify import Verdict, classify_pod, job_verdict, reason_from_message
from activities.jobspec import build_job
from common.models import FailureReason, TaskSpec

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 2, 5, 0, 0, tzinfo=UTC)
NODE = "ip-10-0-3-17.eu-west-1.compute.internal"
TASK = "task-20261202-045900-a1b2c3d4"


def pull_pod(images: list[str], *, phase: str = "Pending") -> dict[str, Any]:
    """The pod the Job controller makes from IPS's Job template, bound to NODE."""
    job = build_job(
        task_id=TASK,
        unit=1,
        node=NODE,
        spec=TaskSpec(images=images, batch_size=1, timeout_seconds=120),
        worker_image="busybox:1.37.0-musl",
        ttl_seconds=600,
        priority_class_name=None,
    )
    template = copy.deepcopy(job["spec"]["template"])
    name = f"{job['metadata']['name']}-x7k2p"
    meta = {
        **template["metadata"],
        "name": name,
        "namespace": "ips",
        "uid": "0b5d1c1e-4a56-4cf3-9f6a-2f3a3c1d9e77",
        "labels": {**template["metadata"]["labels"], "job-name": job["metadata"]["name"]},
    }
    spec = {**template["spec"], "nodeName": NODE}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": phase,
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastTransitionTime": "2026-12-02T04:59:01Z",
                }
            ],
            "initContainerStatuses": [
                {
                    "name": "ips-helper",
                    "image": "docker.io/library/busybox:1.37.0-musl",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                }
            ],
            "containerStatuses": [],
        },
    }


def waiting(name: str, image: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {"waiting": {"reason": reason, "message": message}},
    }


# The kubelet's TerminatePod for a container that never ran (status_manager.go).
UNKNOWN_137 = {
    "terminated": {
        "exitCode": 137,
        "reason": "ContainerStatusUnknown",
        "message": "The container could not be located when the pod was terminated",
    }
}

APP = "registry.example.com/team/app:1"
RATE = (
    'rpc error: code = Unknown desc = failed to pull and unpack image "registry.example.com/team/'
    'app:1": failed to resolve reference "registry.example.com/team/app:1": unexpected status '
    "from HEAD request to https://registry.example.com/v2/team/app/manifests/1: 429 Too Many "
    "Requests - Server message: toomanyrequests: You have reached your pull rate limit."
)


def deleted_at_deadline(pod: dict[str, Any]) -> dict[str, Any]:
    """What the watch shows after the Job controller deleted the pod at activeDeadlineSeconds:
    a deletionTimestamp, phase Failed, and every unstarted container ContainerStatusUnknown."""
    pod = copy.deepcopy(pod)
    pod["metadata"]["deletionTimestamp"] = "2026-12-02T05:01:01Z"
    pod["metadata"]["deletionGracePeriodSeconds"] = 1
    pod["status"]["phase"] = "Failed"
    for cs in pod["status"]["containerStatuses"]:
        cs["state"] = copy.deepcopy(UNKNOWN_137)
        cs["lastState"] = {}
    return pod


def job(condition_type: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "status": {
            "conditions": [
                {"type": condition_type, "status": "True", "reason": reason, "message": message}
            ],
            "failed": 1,
        },
    }


DEADLINE_JOB = job("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")


# --- 1. A pod killed at its Job's deadline -----------------------------------------------------


def test_pod_killed_at_the_deadline_is_judged_from_the_job_and_the_pull_error() -> None:
    pod = pull_pod([APP])
    pod["status"]["containerStatuses"] = [
        waiting(
            "pull-0",
            APP,
            "ImagePullBackOff",
            f'Back-off pulling image "{APP}": ErrImagePull: {RATE}',
        )
    ]
    before = classify_pod(pod, now=NOW, unschedulable_grace=60)
    assert (before.done, before.reason) == (False, FailureReason.RATE_LIMITED)

    killed = deleted_at_deadline(pod)
    during = classify_pod(killed, now=NOW, unschedulable_grace=60)
    assert not during.done and during.reason is None, "exit 137 must not be a container failure"
    final = job_verdict(DEADLINE_JOB, before)
    assert (final.done, final.reason, final.image) == (True, FailureReason.RATE_LIMITED, APP)
    assert final.message.startswith("deadline exceeded while retrying")
    # From 1.31 the Job controller writes FailureTarget first, Failed once the pod is gone.
    target = job(
        "FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline"
    )
    assert job_verdict(target, before).reason == FailureReason.RATE_LIMITED


def test_slow_pull_killed_at_the_deadline_is_a_timeout() -> None:
    pod = pull_pod([APP])
    pod["status"]["containerStatuses"] = [
        {
            **waiting("pull-0", APP, "ContainerCreating", ""),
            "state": {"waiting": {"reason": "ContainerCreating"}},
        }
    ]
    assert classify_pod(pod, now=NOW, unschedulable_grace=60).reason is None
    killed = deleted_at_deadline(pod)
    assert classify_pod(killed, now=NOW, unschedulable_grace=60) == Verdict(done=False)
    assert job_verdict(DEADLINE_JOB, None).reason == FailureReason.TIMEOUT


@pytest.mark.parametrize("where", ["deletionTimestamp", "ContainerStatusUnknown only"])
def test_exit_137_of_a_stopped_pod_is_never_container_failed(where: str) -> None:
    pod = deleted_at_deadline(pull_pod([APP, "redis:7"]))
    pod["status"]["containerStatuses"] = [
        {"name": "pull-0", "image": APP, "state": copy.deepcopy(UNKNOWN_137)},
        {"name": "pull-1", "image": "docker.io/library/redis:7",
         "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
    ]  # fmt: skip
    if where != "deletionTimestamp":
        # The DELETED event's object, or a kubelet status without the deletion stamp.
        del pod["metadata"]["deletionTimestamp"]
    v = classify_pod(pod, now=NOW, unschedulable_grace=60)
    assert (v.done, v.reason) == (False, None)


def test_a_job_failed_without_deadline_keeps_the_pull_error_seen_before() -> None:
    """The pod was deleted by hand mid back-off: backoffLimit 0 fails the Job."""
    failed = job("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    seen = Verdict(done=False, reason=FailureReason.IMAGE_PULL_BACKOFF, image=APP, message="x")
    v = job_verdict(failed, seen)
    assert (v.done, v.reason, v.image) == (True, FailureReason.IMAGE_PULL_BACKOFF, APP)
    assert v.message == "Job has reached the specified backoff limit, while retrying: x"
    bare = job_verdict(failed, None)
    assert (bare.reason, bare.message) == (
        FailureReason.CONTAINER_FAILED,
        "Job has reached the specified backoff limit",
    )


def test_a_real_container_failure_is_still_container_failed() -> None:
    pod = pull_pod([APP], phase="Failed")
    pod["status"]["containerStatuses"] = [
        {"name": "pull-0", "image": APP, "state": {"terminated": {
            "exitCode": 128, "reason": "StartError",
            "message": 'failed to create containerd task: exec: "/ips-bin/busybox": '
                       "exec format error",
        }}},
    ]  # fmt: skip
    v = classify_pod(pod, now=NOW, unschedulable_grace=60)
    assert (v.done, v.reason, v.image) == (True, FailureReason.CONTAINER_FAILED, APP)
    assert v.message.startswith("exit code 128: failed to create containerd task")


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


# --- 5. CreateContainerError is retried ----------------------------------------------------------

# containerd's CRI error when a container name is still reserved by an earlier attempt.
_CNAME = "pull-0_ips-7d3f0c9a1b-0f1e2d3c4b5a6978-x7k2p_ips_0b5d1c1e_0"
RESERVED = f'failed to reserve container name "{_CNAME}": name "{_CNAME}" is reserved for "5c0ffee"'


def test_create_container_error_is_pending_then_its_own_reason_at_the_deadline() -> None:
    pod = pull_pod([APP])
    pod["status"]["containerStatuses"] = [waiting("pull-0", APP, "CreateContainerError", RESERVED)]
    v = classify_pod(pod, now=NOW, unschedulable_grace=60)
    assert (v.done, v.reason, v.image) == (False, FailureReason.CREATE_CONTAINER_ERROR, APP)
    assert v.message.startswith("CreateContainerError: failed to reserve container name")
    final = job_verdict(DEADLINE_JOB, v)
    assert (final.done, final.reason) == (True, FailureReason.CREATE_CONTAINER_ERROR)
    assert final.message.startswith("deadline exceeded while retrying: CreateContainerError")


def test_run_container_error_stays_terminal() -> None:
    pod = pull_pod([APP])
    pod["status"]["containerStatuses"] = [
        waiting(
            "pull-0",
            APP,
            "RunContainerError",
            "failed to start containerd task: OCI runtime start failed",
        )
    ]
    v = classify_pod(pod, now=NOW, unschedulable_grace=60)
    assert (v.done, v.reason) == (True, FailureReason.CONTAINER_FAILED)


# --- 6. Exact image matching; codes from the error part only ------------------------------------


def not_found(ref: str, full: str) -> str:
    return (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{full}": failed to '
        f'resolve reference "{full}": {full}: not found'
    )


def server_error(full: str, host: str, path: str, tag: str) -> str:
    return (
        f'rpc error: code = Unknown desc = failed to pull and unpack image "{full}": failed to '
        f'resolve reference "{full}": unexpected status from HEAD request to '
        f"https://{host}/v2/{path}/manifests/{tag}: 500 Internal Server Error"
    )


@pytest.mark.parametrize(
    ("image", "message", "expected"),
    [
        # A tag that looks like an HTTP status, in the quoted reference, the bare one and the URL.
        ("app:401", not_found("app:401", "docker.io/library/app:401"),
         FailureReason.IMAGE_NOT_FOUND),
        ("registry.example.com/t/app:403",
         not_found("", "registry.example.com/t/app:403"), FailureReason.IMAGE_NOT_FOUND),
        ("registry.example.com/t/app:404",
         server_error("registry.example.com/t/app:404", "registry.example.com", "t/app", "404"),
         None),
        ("registry.example.com/t/app:429",
         'rpc error: code = Unknown desc = failed to pull and unpack image '
         '"registry.example.com/t/app:429": failed to resolve reference '
         '"registry.example.com/t/app:429": pull access denied, repository does not exist or may '
         "require authorization: authorization failed: 401 Unauthorized",
         FailureReason.UNAUTHORIZED),
        # The same, as the Failed Event and the back-off message word it.
        ("app:401", f'Failed to pull image "app:401": {not_found("", "docker.io/library/app:401")}',
         FailureReason.IMAGE_NOT_FOUND),
        ("app:429", 'Back-off pulling image "app:429"', None),
        ("app:429", f'Back-off pulling image "app:429": ErrImagePull: {RATE}',
         FailureReason.RATE_LIMITED),
    ],
)  # fmt: skip
def test_codes_are_read_from_the_error_part_only(
    image: str, message: str, expected: FailureReason | None
) -> None:
    assert reason_from_message(message, image) == expected


def event(container: str, message: str, stamp: str, reason: str = "Failed") -> dict[str, Any]:
    """A core/v1 Event as the kubelet records it (recorder.Eventf on the container's reference)."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"pod.{stamp}", "namespace": "ips"},
        "involvedObject": {
            "kind": "Pod",
            "namespace": "ips",
            "name": "ips-7d3f0c9a1b-0f1e2d3c4b5a6978-x7k2p",
            "apiVersion": "v1",
            "fieldPath": f"spec.containers{{{container}}}",
        },
        "reason": reason,
        "message": message,
        "source": {"component": "kubelet", "host": NODE},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "type": "Warning",
    }


UNAUTH = (
    'rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/team/app:10": '
    "failed to resolve reference: failed to authorize: failed to fetch anonymous token: "
    "unexpected status from GET request to https://auth.docker.io/token: 401 Unauthorized"
)


def test_events_are_matched_to_the_image_exactly_not_by_substring() -> None:
    """`team/app:1` and `team/app:10`: the Event about :10 is no evidence about :1."""
    pod = pull_pod(["team/app:1", "team/app:10"])
    backoff = 'Back-off pulling image "team/app:1"'  # before Kubernetes 1.30: no error part
    pod["status"]["containerStatuses"] = [
        waiting("pull-0", "team/app:1", "ImagePullBackOff", backoff),
        waiting("pull-1", "team/app:10", "ContainerCreating", ""),
    ]
    events = [
        event("pull-1", f'Failed to pull image "team/app:10": {UNAUTH}', "2026-12-02T04:59:50Z"),
        event("pull-0", "Error: ImagePullBackOff", "2026-12-02T04:59:55Z"),
    ]
    v = classify_pod(pod, now=NOW, unschedulable_grace=60, events=events)
    assert (v.done, v.reason, v.image) == (False, FailureReason.IMAGE_PULL_BACKOFF, "team/app:1")
    # The Event for :1 itself, written in the normalized form, is found.
    mine = event(
        "pull-0",
        f'Failed to pull image "docker.io/team/app:1": {UNAUTH.replace("app:10", "app:1")}',
        "2026-12-02T04:59:58Z",
    )
    v = classify_pod(pod, now=NOW, unschedulable_grace=60, events=[*events, mine])
    assert (v.done, v.reason, v.image) == (True, FailureReason.UNAUTHORIZED, "team/app:1")


def test_an_event_about_another_container_with_the_same_image_is_ignored() -> None:
    pod = pull_pod(["team/app:1"])
    pod["status"]["containerStatuses"] = [
        waiting("pull-0", "team/app:1", "ImagePullBackOff", 'Back-off pulling image "team/app:1"')
    ]
    other = event("sidecar", f'Failed to pull image "team/app:1": {UNAUTH}', "2026-12-02T04:59:50Z")
    v = classify_pod(pod, now=NOW, unschedulable_grace=60, events=[other])
    assert v.reason == FailureReason.IMAGE_PULL_BACKOFF
