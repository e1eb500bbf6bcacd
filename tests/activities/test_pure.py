"""The engine's pure parts: failure classification, node selection, the Job manifest, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from activities import errors
from activities.classify import classify_pod, job_verdict, reason_from_message
from activities.jobspec import build_job, job_name
from activities.selection import normalize_image, select_nodes
from common.models import FailureReason, SkipReason, TaskSpec, Toleration

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 16, 15, 0, 0, tzinfo=UTC)

# Real containerd / kubelet messages.
NOT_FOUND = (
    'rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/nope:1":'
    ' failed to resolve reference "docker.io/library/nope:1": docker.io/library/nope:1: not found'
)
UNAUTHORIZED = (
    'rpc error: code = Unknown desc = failed to pull and unpack image "r.example.com/p:1": failed '
    "to resolve reference: failed to authorize: failed to fetch anonymous token: unexpected "
    "status: 401 Unauthorized"
)
DENIED = (
    'Failed to pull image "private/x:1": rpc error: code = Unknown desc = Error response from '
    "daemon: pull access denied for private/x, repository does not exist or may require "
    "'docker login': denied: requested access to the resource is denied"
)
RATE = (
    'rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/library/nginx:1":'
    " failed to copy: httpReadSeeker: failed open: unexpected status code "
    "https://registry-1.docker.io/v2/library/nginx/manifests/sha256:abc: 429 Too Many Requests - "
    "Server message: toomanyrequests: You have reached your pull rate limit."
)
OTHER = 'rpc error: code = Unknown desc = failed to pull and unpack image "x:1": i/o timeout'


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (NOT_FOUND, FailureReason.IMAGE_NOT_FOUND),
        ("manifest unknown: manifest unknown", FailureReason.IMAGE_NOT_FOUND),
        (UNAUTHORIZED, FailureReason.UNAUTHORIZED),
        (DENIED, FailureReason.UNAUTHORIZED),
        ("unexpected status: 403 Forbidden", FailureReason.UNAUTHORIZED),
        (RATE, FailureReason.RATE_LIMITED),
        (OTHER, None),
        ('Back-off pulling image "x:1"', None),
    ],
)
def test_reason_from_message(message: str, reason: FailureReason | None) -> None:
    assert reason_from_message(message) == reason


def pod(
    *,
    phase: str = "Pending",
    statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "containerStatuses": statuses or []}
    if conditions:
        status["conditions"] = conditions
    if reason:
        status["reason"] = reason
    return {
        "metadata": {"name": "p"},
        "spec": {
            "initContainers": [{"name": "ips-helper", "image": "busybox:1.37.0-musl"}],
            "containers": [
                {"name": "pull-0", "image": "nginx:1"},
                {"name": "pull-1", "image": "nope:1"},
            ],
        },
        "status": status,
    }


def waiting(name: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"name": name, "state": {"waiting": {"reason": reason, "message": message}}}


def test_succeeded_pod_is_ok() -> None:
    v = classify_pod(pod(phase="Succeeded"), now=NOW, unschedulable_grace=60)
    assert v.done and v.ok


def test_not_found_fails_at_once_naming_the_image() -> None:
    p = pod(
        statuses=[
            waiting("pull-0", "ContainerCreating"),
            waiting("pull-1", "ErrImagePull", NOT_FOUND),
        ]
    )
    v = classify_pod(p, now=NOW, unschedulable_grace=60)
    assert (v.done, v.ok, v.reason, v.image) == (
        True,
        False,
        FailureReason.IMAGE_NOT_FOUND,
        "nope:1",
    )
    assert "code = NotFound" in v.message


def test_generic_backoff_reads_the_events() -> None:
    p = pod(statuses=[waiting("pull-1", "ImagePullBackOff", 'Back-off pulling image "nope:1"')])
    v = classify_pod(p, now=NOW, unschedulable_grace=60)
    assert (v.done, v.reason) == (False, FailureReason.IMAGE_PULL_BACKOFF)
    events = [
        {"reason": "Pulling", "message": 'Pulling image "nope:1"'},
        {
            "reason": "Failed",
            "message": f'Failed to pull image "nope:1": {UNAUTHORIZED}',
            "lastTimestamp": "2026-01-16T14:59:00Z",
        },
        {"reason": "Failed", "message": 'Error: ImagePullBackOff for "other:2"'},
    ]
    v = classify_pod(p, now=NOW, unschedulable_grace=60, events=events)
    assert (v.done, v.reason, v.image) == (True, FailureReason.UNAUTHORIZED, "nope:1")


def test_rate_limited_is_not_terminal_and_names_itself_at_the_deadline() -> None:
    p = pod(statuses=[waiting("pull-0", "ErrImagePull", RATE)])
    v = classify_pod(p, now=NOW, unschedulable_grace=60)
    assert (v.done, v.reason) == (False, FailureReason.RATE_LIMITED)
    job = {
        "status": {
            "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]
        }
    }
    final = job_verdict(job, v)
    assert (final.done, final.reason, final.image) == (True, FailureReason.RATE_LIMITED, "nginx:1")
    assert final.message.startswith("deadline exceeded")


def test_deadline_without_a_pull_error_is_timeout() -> None:
    p = pod(phase="Failed", reason="DeadlineExceeded")
    v = classify_pod(p, now=NOW, unschedulable_grace=60)
    assert (v.done, v.reason) == (True, FailureReason.TIMEOUT)
    job = {
        "status": {
            "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]
        }
    }
    assert job_verdict(job, None).reason == FailureReason.TIMEOUT
    done = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert job_verdict(done, None).ok


def test_container_failure() -> None:
    term = {"name": "pull-0", "state": {"terminated": {"exitCode": 127, "reason": "Error"}}}
    v = classify_pod(pod(phase="Failed", statuses=[term]), now=NOW, unschedulable_grace=60)
    assert (v.reason, v.image, v.message) == (
        FailureReason.CONTAINER_FAILED,
        "nginx:1",
        "exit code 127: Error",
    )


def test_unschedulable_only_after_the_grace_period() -> None:
    since = (NOW - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cond = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/5 nodes are available",
            "lastTransitionTime": since,
        }
    ]
    early = classify_pod(pod(conditions=cond), now=NOW, unschedulable_grace=60)
    late = classify_pod(pod(conditions=cond), now=NOW, unschedulable_grace=20)
    assert (early.done, early.reason) == (False, FailureReason.UNSCHEDULABLE)
    assert (late.done, late.reason) == (True, FailureReason.UNSCHEDULABLE)


# --- Node selection ------------------------------------------------------------------------


def node(
    name: str,
    *,
    ready: bool = True,
    cordoned: bool = False,
    taints: list[dict[str, str]] | None = None,
    os: str = "linux",
    images: list[list[str]] | None = None,
    hostname: str | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/os": os, "kubernetes.io/hostname": hostname or name},
        },
        "spec": {"unschedulable": cordoned, "taints": taints or []},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "images": [{"names": names} for names in images or []],
        },
    }


def test_selection_skips_warms_and_sorts() -> None:
    nodes = [
        node("n5"),
        node("n1", ready=False),
        node("n2", cordoned=True),
        node("n3", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]),
        node("n4", os="windows"),
        node("n0", images=[["docker.io/library/nginx:latest"], ["docker.io/library/redis:7"]]),
        node("n6", images=[["docker.io/library/nginx:latest"]]),
        node("n7", taints=[{"key": "soft", "effect": "PreferNoSchedule"}], hostname="ip-10-0-0-7"),
        node("n8", images=[["docker.io/library/nginx:latest-alpine"], ["redis:7"]]),
    ]
    spec = TaskSpec(images=["nginx", "redis:7"], batch_size=2)
    sel = select_nodes(nodes, spec)
    assert sel.matched == 9
    assert sel.targets == ["n5", "n6", "n7", "n8"]  # sorted; n8's nginx tag is no match
    assert sel.warm == 1
    assert [(s.node_name, s.reason) for s in sel.skipped] == [
        ("n1", SkipReason.NOT_READY),
        ("n2", SkipReason.CORDONED),
        ("n3", SkipReason.TAINTED),
        ("n4", SkipReason.NON_LINUX),
    ]
    tolerant = spec.model_copy(update={"tolerations": [Toleration(key="gpu", operator="Exists")]})
    assert "n3" in select_nodes(nodes, tolerant).targets
    always = spec.model_copy(update={"image_pull_policy": "Always"})
    assert "n0" in select_nodes(nodes, always).targets


def test_selection_with_node_names_reports_missing() -> None:
    spec = TaskSpec(images=["nginx"], batch_size=1, node_names=["b", "ghost", "a"])
    sel = select_nodes([node("a"), node("b"), node("c")], spec)
    assert (sel.matched, sel.targets, sel.missing) == (2, ["a", "b"], ["ghost"])


@pytest.mark.parametrize(
    ("ref", "full"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("redis:7", "docker.io/library/redis:7"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ("ghcr.io/org/app:1", "ghcr.io/org/app:1"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("nginx@sha256:" + "a" * 64, "docker.io/library/nginx@sha256:" + "a" * 64),
    ],
)
def test_normalize_image(ref: str, full: str) -> None:
    assert normalize_image(ref) == full


# --- The Job -------------------------------------------------------------------------------


def test_job_manifest_is_hardened_and_deterministic() -> None:
    spec = TaskSpec(
        images=["nginx:1", "gcr.io/distroless/static:nonroot"],
        batch_size=5,
        image_pull_secrets=["regcred"],
        tolerations=[Toleration(key="gpu", operator="Exists", effect="NoSchedule")],
        timeout_seconds=120,
    )
    long_node = "ip-10-0-0-1." + "x" * 60 + ".compute.internal"
    job = build_job(
        task_id="task-20260116-151234-a1b2c3d4",
        unit=3,
        node=long_node,
        spec=spec,
        worker_image="busybox:1.37.0-musl",
        ttl_seconds=600,
        priority_class_name="low",
    )
    name = job["metadata"]["name"]
    assert name == job_name("task-20260116-151234-a1b2c3d4", long_node) and len(name) <= 63
    labels = job["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "ips"
    assert labels["prewarm.ips.io/task"] == "task-20260116-151234-a1b2c3d4"
    assert all(len(v) <= 63 for v in labels.values())
    assert job["metadata"]["annotations"]["prewarm.ips.io/node"] == long_node
    js = job["spec"]
    assert (js["backoffLimit"], js["activeDeadlineSeconds"], js["ttlSecondsAfterFinished"]) == (
        0,
        120,
        600,
    )
    ps = js["template"]["spec"]
    assert "nodeName" not in ps and "nodeSelector" not in ps
    assert ps["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [long_node]}]}
        ]
    }
    assert ps["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert ps["imagePullSecrets"] == [{"name": "regcred"}]
    assert ps["automountServiceAccountToken"] is False
    assert ps["priorityClassName"] == "low"
    assert ps["securityContext"]["runAsNonRoot"] and ps["securityContext"]["runAsUser"] == 65534
    helper = ps["initContainers"][0]
    assert helper["image"] == "busybox:1.37.0-musl"
    assert [c["image"] for c in ps["containers"]] == spec.images
    for c in [helper, *ps["containers"]]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["readOnlyRootFilesystem"] and sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert c["resources"]["limits"]
    # No shell needed: every pull container runs the static helper copied into the emptyDir.
    assert all(c["command"] == ["/ips-bin/busybox", "true"] for c in ps["containers"])


# --- Errors --------------------------------------------------------------------------------


def _exc(code: int, reason: str = "", headers: dict[str, str] | None = None) -> ApiException:
    body = json.dumps({"kind": "Status", "message": f"m{code}", "reason": reason})
    e = ApiException(status=code, reason="x", body=body)
    e.headers = headers
    return e


@pytest.mark.parametrize(
    ("code", "cls", "retryable"),
    [
        (400, errors.KubernetesBadRequest, False),
        (403, errors.KubernetesForbidden, False),
        (404, errors.KubernetesNotFound, False),
        (409, errors.KubernetesConflict, True),
        (410, errors.KubernetesGone, False),
        (422, errors.KubernetesInvalid, False),
        (429, errors.KubernetesTooManyRequests, True),
        (500, errors.KubernetesServerError, True),
        (503, errors.KubernetesServerError, True),
        (0, errors.KubernetesUnreachable, True),
    ],
)
def test_errors_are_typed_in_one_place(code: int, cls: type, retryable: bool) -> None:
    err = errors.from_api_exception(_exc(code))
    assert type(err) is cls and err.retryable is retryable
    app = errors.to_application_error(err, "doing x")
    assert app.non_retryable is (not retryable)
    assert app.type == cls.__name__


def test_429_carries_retry_after_and_409_already_exists() -> None:
    err = errors.from_api_exception(_exc(429, "TooManyRequests", {"Retry-After": "3"}))
    assert isinstance(err, errors.KubernetesTooManyRequests) and err.retry_after == 3.0
    conflict = errors.from_api_exception(_exc(409, "AlreadyExists"))
    assert isinstance(conflict, errors.KubernetesConflict) and conflict.already_exists
