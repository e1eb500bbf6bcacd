"""The pull errors containerd gives against a real registry (the shapes kubesim/registrypull.py
reproduces, quoted from containerd v2's core/remotes/docker/resolver.go and authorizer.go), as
the engine's classification reads them."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from activities.classify import TERMINAL_PULL_REASONS, classify_pod
from activities.pullmessage import reason_from_message
from common.models import FailureReason

pytestmark = pytest.mark.unit

REF = "127.0.0.1:5443/team/app:429"
HEAD = "https://127.0.0.1:5443/v2/team/app/manifests/429"
PULL = f'rpc error: code = Unknown desc = failed to pull and unpack image "{REF}": '
RESOLVE = f'{PULL}failed to resolve reference "{REF}": '
DENIED = "pull access denied, repository does not exist or may require authorization: "


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # a HEAD has no body: the status line is all there is
        (f"{RESOLVE}unexpected status from HEAD request to {HEAD}: 429 Too Many Requests",
         FailureReason.RATE_LIMITED),
        # a GET adds the registry's errors on a new line (Errors.Error())
        (f"{PULL}unexpected status from GET request to {HEAD}: 429 Too Many Requests\n"
         "toomanyrequests: too many requests", FailureReason.RATE_LIMITED),
        (f'Back-off pulling image "{REF}": ErrImagePull: {RESOLVE}unexpected status from HEAD '
         f"request to {HEAD}: 429 Too Many Requests", FailureReason.RATE_LIMITED),
        (f"{RESOLVE}{DENIED}authorization failed: no basic auth credentials",
         FailureReason.UNAUTHORIZED),
        (f"{RESOLVE}unexpected status from HEAD request to {HEAD}: 401 Unauthorized",
         FailureReason.UNAUTHORIZED),
        (f"{RESOLVE}{DENIED}server message: insufficient_scope: authorization failed",
         FailureReason.UNAUTHORIZED),
        (f"{RESOLVE}failed to authorize: failed to fetch oauth token: unexpected status from GET "
         "request to http://127.0.0.1:4000/token?scope=repository%3Ateam%2Fapp%3Apull&service=r: "
         "401 Unauthorized", FailureReason.UNAUTHORIZED),
        # the kubelet's aggregate over two credentials
        (f"[{RESOLVE}unexpected status from HEAD request to {HEAD}: 401 Unauthorized, "
         f"{RESOLVE}{DENIED}authorization failed: no basic auth credentials]",
         FailureReason.UNAUTHORIZED),
        (f'rpc error: code = NotFound desc = failed to pull and unpack image "{REF}": '
         f'failed to resolve reference "{REF}": {REF}: not found', FailureReason.IMAGE_NOT_FOUND),
        (f'rpc error: code = NotFound desc = failed to pull and unpack image "{REF}": '
         "no match for platform in manifest: not found", FailureReason.NO_MATCHING_PLATFORM),
        (f'Back-off pulling image "{REF}": ErrImagePull: rpc error: code = NotFound desc = '
         f'failed to pull and unpack image "{REF}": no match for platform in manifest: not found',
         FailureReason.NO_MATCHING_PLATFORM),
        # one credential refused, the other served the index: the platform is the cause
        (f"[{RESOLVE}unexpected status from HEAD request to {HEAD}: 401 Unauthorized, "
         f'rpc error: code = NotFound desc = failed to pull and unpack image "{REF}": '
         "no match for platform in manifest: not found]", FailureReason.NO_MATCHING_PLATFORM),
        # unreachable: no code in it; the back-off reason stands
        (f'{RESOLVE}failed to do request: Head "{HEAD}": dial tcp 127.0.0.1:5443: connect: '
         "connection refused", None),
    ],
)  # fmt: skip
def test_registry_pull_errors_classify(message: str, expected: FailureReason | None) -> None:
    assert reason_from_message(f'Failed to pull image "{REF}": {message}', REF) == expected
    assert reason_from_message(message, REF) == expected


REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
NOW = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)


def _platform_pod() -> dict[str, Any]:
    """An amd64-only image on an arm64 node, as the kubelet reports containerd's error."""
    return dict(json.loads((REAL / "platform.pod.json").read_text()))


def test_an_image_without_the_node_platform_fails_the_node_at_once() -> None:
    """The image exists (not ImageNotFound); no retry on this node can pull it: terminal."""
    pod = _platform_pod()
    (cs,) = pod["status"]["containerStatuses"]
    v = classify_pod(pod, now=NOW, unschedulable_grace=60)
    assert (v.done, v.reason, v.image) == (
        True,
        FailureReason.NO_MATCHING_PLATFORM,
        pod["spec"]["containers"][0]["image"],
    )
    assert v.terminal_pull_error and FailureReason.NO_MATCHING_PLATFORM in TERMINAL_PULL_REASONS
    assert v.message == cs["state"]["waiting"]["message"]
    # The same wire string as the preflight's skip, so operators see one code for one cause.
    assert FailureReason.NO_MATCHING_PLATFORM.value == "NoMatchingPlatform"


def test_a_bare_back_off_reads_the_platform_error_from_the_failed_event() -> None:
    """Before Kubernetes 1.30 the back-off message carries no error: the Event names it."""
    pod = _platform_pod()
    (cs,) = pod["status"]["containerStatuses"]
    image, error = cs["image"], cs["state"]["waiting"]["message"]
    backoff = copy.deepcopy(pod)
    backoff["status"]["containerStatuses"][0]["state"] = {
        "waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
    }
    event = {
        "reason": "Failed",
        "type": "Warning",
        "message": f'Failed to pull image "{image}": {error}',
        "involvedObject": {"kind": "Pod", "fieldPath": f"spec.containers{{{cs['name']}}}"},
        "lastTimestamp": "2026-01-01T00:00:30Z",
    }
    assert classify_pod(backoff, now=NOW, unschedulable_grace=60).reason is (
        FailureReason.IMAGE_PULL_BACKOFF
    )
    v = classify_pod(backoff, now=NOW, unschedulable_grace=60, events=[event])
    assert (v.done, v.reason) == (True, FailureReason.NO_MATCHING_PLATFORM)
