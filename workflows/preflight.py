"""The workflow's side of the registry preflight (issue 16), deterministic.

`resolve` runs the `resolve_images` activity (activities/registry.py) before the node listing;
`verdict` reads its answer: a `NotFound` or `Unauthorized` image stops the task before any Job,
with the registry's own message; an `Unreachable` one (or a preflight that failed outright) is a
warning, and the task pulls without preflight for it. `pinned_images` gives the references the
pull pods use when `pinDigests` is on. `adaptive` says whether the task paces its pulls with
the AIMD window (not `pacing: fixed`), `unit_window` is the window a unit starts from.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from common.engine import EngineState, trim
    from common.models import Pacing, TaskSpec
    from common.pacing import AimdWindow
    from common.preflight import (
        ACTIVITY_RESOLVE_IMAGES,
        PreflightError,
        ResolvedImage,
        ResolveImagesInput,
        ResolveImagesResult,
    )
    from workflows.timeouts import PREFLIGHT_HEARTBEAT_TIMEOUT, PREFLIGHT_RETRY, PREFLIGHT_TIMEOUT

PATCH_PREFLIGHT = "preflight-v1"
FATAL = (PreflightError.NOT_FOUND, PreflightError.UNAUTHORIZED)
MAX_NAMED = 3  # images named in the failure message; the rest are counted


async def resolve(task_id: str, images: list[str], pull_secrets: list[str]) -> ResolveImagesResult:
    """The preflight's answer. A preflight that fails outright (every attempt) is not the
    task's failure: it becomes one warning, and the task pulls without preflight."""
    try:
        return await workflow.execute_activity(
            ACTIVITY_RESOLVE_IMAGES,
            ResolveImagesInput(task_id=task_id, images=images, image_pull_secrets=pull_secrets),
            result_type=ResolveImagesResult,
            start_to_close_timeout=PREFLIGHT_TIMEOUT,
            heartbeat_timeout=PREFLIGHT_HEARTBEAT_TIMEOUT,
            retry_policy=PREFLIGHT_RETRY,
            summary=f"preflight: resolve {len(images)} images",
        )
    except ActivityError as err:
        if is_cancelled_exception(err):
            raise
        cause = err.cause if err.cause is not None else err
        return ResolveImagesResult(
            images=[],
            warnings=[trim(f"preflight failed, pulling without it: {cause}")],
        )


def verdict(result: ResolveImagesResult) -> str | None:
    """The task's failure message when an image does not exist or may not be pulled."""
    bad = [img for img in result.images if img.error in FATAL]
    if not bad:
        return None
    named = "; ".join(_why(img) for img in bad[:MAX_NAMED])
    total = len(result.images)
    return trim(f"preflight refused {len(bad)} of {total} images, no Job was created: {named}")


def _why(img: ResolvedImage) -> str:
    """`not found: <the registry's message>`, the image named once (the client's messages
    start with the reference it asked for)."""
    what = "not found" if img.error == PreflightError.NOT_FOUND else "unauthorized"
    repo = img.image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    message = img.message if img.message and repo in img.message else f"{img.image}: {img.message}"
    return f"{what}: {message.rstrip(': ')}"


def pinned_images(images: list[str], resolved: list[ResolvedImage]) -> list[str]:
    """Each image as `name@sha256:...` when the preflight resolved it; else unchanged (an
    unreachable registry: the kubelet resolves the tag itself)."""
    by_image = {r.image: r.pinned for r in resolved if r.error is None and r.pinned}
    return [by_image.get(image) or image for image in images]


def adaptive(spec: TaskSpec, state: EngineState) -> bool:
    """The task paces its pulls with the AIMD window: registry-aware (it ran the preflight)
    and not `pacing: fixed`."""
    return state.registry_aware and spec.pacing != Pacing.FIXED


def unit_window(spec: TaskSpec, state: EngineState) -> AimdWindow | None:
    """The AIMD window a unit's activity starts from, or None: a fixed `in_flight` whatever
    the registry answers. None for a task from before the preflight, and for `pacing: fixed`:
    the activity then never shrinks its gate and reports no window back (the workflow would
    ignore one: `adaptive`), so the progress keeps the preflight's window, batchSize.

    Only the activity's input differs, never a command, so no patch is needed: histories
    from before `pacing` carry the default, adaptive, and replay as they ran."""
    return state.pacing if adaptive(spec, state) else None
