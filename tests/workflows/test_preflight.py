"""The workflow's reading of the preflight (workflows/preflight.py): which answers stop the task
and with what message, and the references the pull pods use when digests are pinned."""

from __future__ import annotations

import pytest

from common.preflight import ImagePlatform, PreflightError, ResolvedImage, ResolveImagesResult
from workflows.preflight import pinned_images, verdict

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "a" * 64
OK = ResolvedImage(
    image="127.0.0.1:5000/team/multi:1",
    digest=DIGEST,
    platforms=[ImagePlatform(os="linux", architecture="amd64", digest=DIGEST, compressed_size=1)],
)
TYPO = ResolvedImage(
    image="127.0.0.1:5000/team/singel:1",
    error=PreflightError.NOT_FOUND,
    message="127.0.0.1:5000/team/singel:1: HTTP 404: MANIFEST_UNKNOWN: manifest unknown",
)
DENIED = ResolvedImage(
    image="127.0.0.1:5001/private/single:1",
    error=PreflightError.UNAUTHORIZED,
    message="incorrect username or password",
)
DOWN = ResolvedImage(
    image="127.0.0.1:1/team/app:1",
    error=PreflightError.UNREACHABLE,
    message="All connection attempts failed",
)


def test_not_found_stops_the_task_with_the_registrys_message() -> None:
    message = verdict(ResolveImagesResult(images=[OK, TYPO, DOWN]))
    assert message == (
        "preflight refused 1 of 3 images, no Job was created: not found: "
        "127.0.0.1:5000/team/singel:1: HTTP 404: MANIFEST_UNKNOWN: manifest unknown"
    )


def test_unauthorized_names_the_image_when_the_registry_does_not() -> None:
    message = verdict(ResolveImagesResult(images=[DENIED]))
    assert message == (
        "preflight refused 1 of 1 images, no Job was created: unauthorized: "
        "127.0.0.1:5001/private/single:1: incorrect username or password"
    )


def test_many_bad_images_are_counted_and_the_message_is_bounded() -> None:
    bad = [TYPO.model_copy(update={"image": f"r.io/x/app-{i}:1"}) for i in range(10)]
    message = verdict(ResolveImagesResult(images=bad))
    assert message is not None and len(message) <= 256
    assert message.startswith("preflight refused 10 of 10 images, no Job was created: ")


def test_unreachable_or_resolved_images_do_not_stop_the_task() -> None:
    assert verdict(ResolveImagesResult(images=[OK, DOWN], warnings=["w"])) is None
    assert verdict(ResolveImagesResult(images=[])) is None


def test_pinned_images_replace_the_tag_by_the_digest_of_resolved_images_only() -> None:
    assert pinned_images([OK.image, DOWN.image], [OK, DOWN]) == [
        f"127.0.0.1:5000/team/multi@{DIGEST}",
        DOWN.image,
    ]
