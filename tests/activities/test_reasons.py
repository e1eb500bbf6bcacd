"""Failure reasons as a real cluster reports them (issue 12, items 1, 5 and 6).

Every pod here is the one IPS creates (the Job template from activities/jobspec.py), with the
status the named Kubernetes component writes; the shapes and strings are quoted from upstream:

- the kubelet's TerminatePod, for a container it no longer finds: terminated, reason
  `ContainerStatusUnknown`, exit code 137 (pkg/kubelet/status/status_manager.go);
- pull Events and waiting messages: pkg/kubelet/images/image_manager.go (EnsureImageExists), with
  containerd's errors as its CRI returns them.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from activities.classify import Verdict, classify_pod, job_verdict, reason_from_message
from common.models import FailureReason
from tests.activities.podshapes import (
    APP,
    DEADLINE_JOB,
    NODE,
    NOW,
    RATE,
    UNKNOWN_137,
    deleted_at_deadline,
    job,
    pull_pod,
    waiting,
)

pytestmark = pytest.mark.unit


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
