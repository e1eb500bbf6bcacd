"""The pull errors containerd gives against a real registry (the shapes kubesim/registrypull.py
reproduces, quoted from containerd v2's core/remotes/docker/resolver.go and authorizer.go), as
the engine's classification reads them."""

from __future__ import annotations

import pytest

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
         "no match for platform in manifest: not found", FailureReason.IMAGE_NOT_FOUND),
        # unreachable: no code in it; the back-off reason stands
        (f'{RESOLVE}failed to do request: Head "{HEAD}": dial tcp 127.0.0.1:5443: connect: '
         "connection refused", None),
    ],
)  # fmt: skip
def test_registry_pull_errors_classify(message: str, expected: FailureReason | None) -> None:
    assert reason_from_message(f'Failed to pull image "{REF}": {message}', REF) == expected
    assert reason_from_message(message, REF) == expected
