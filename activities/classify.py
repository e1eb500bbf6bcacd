"""From a pull pod's status (and its Events) to one node outcome with one reason code (pure).

The container runtime's message carries the specific cause as a gRPC code or an HTTP status
(`code = NotFound`, `401 Unauthorized`, `429 Too Many Requests`); after repeated failures the
waiting message degrades to "Back-off pulling image", so Events are read as well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.models import FailureReason
from workflows.types import trim

_PULL_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"})
_START_WAITING = frozenset(
    {"CreateContainerError", "CreateContainerConfigError", "RunContainerError", "StartError"}
)
_INVALID_NAME = "InvalidImageName"
TERMINAL_PULL_REASONS = frozenset({FailureReason.IMAGE_NOT_FOUND, FailureReason.UNAUTHORIZED})

# Order matters: a 429 body can mention authorization; an unauthorized pull can say "not found".
_CODES: tuple[tuple[re.Pattern[str], FailureReason], ...] = (
    (
        re.compile(r"\b429\b|too ?many ?requests|code = ResourceExhausted", re.I),
        FailureReason.RATE_LIMITED,
    ),
    (
        re.compile(
            r"\b401\b|\b403\b|unauthori[sz]ed|code = (?:Unauthenticated|PermissionDenied)"
            r"|authentication required|pull access denied|authorization failed|no basic auth",
            re.I,
        ),
        FailureReason.UNAUTHORIZED,
    ),
    (
        re.compile(r"code = NotFound|\b404\b|manifest unknown|: not found\b|name unknown", re.I),
        FailureReason.IMAGE_NOT_FOUND,
    ),
)


def reason_from_message(message: str) -> FailureReason | None:
    """The failure code carried in a runtime/registry message; None when it names none."""
    for pattern, reason in _CODES:
        if pattern.search(message):
            return reason
    return None


@dataclass(frozen=True)
class Verdict:
    """`done` with ok/failure, or still running (`done` False) with the last pull error seen."""

    done: bool
    ok: bool = False
    reason: FailureReason | None = None
    image: str | None = None
    message: str = ""

    @property
    def terminal_pull_error(self) -> bool:
        return self.reason in TERMINAL_PULL_REASONS


RUNNING = Verdict(done=False)
SUCCEEDED = Verdict(done=True, ok=True)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _event_message(events: list[dict[str, Any]], image: str) -> str | None:
    """The newest `Failed` event naming this image (events carry the specific pull error)."""
    best: tuple[str, str] | None = None
    for ev in events:
        msg = ev.get("message") or ""
        if ev.get("reason") != "Failed" or image not in msg:
            continue
        stamp = ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("firstTimestamp") or ""
        if best is None or stamp >= best[0]:
            best = (stamp, msg)
    return best[1] if best else None


def _pull_failure(image: str, waiting: dict[str, Any], events: list[dict[str, Any]]) -> Verdict:
    message = waiting.get("message") or waiting.get("reason") or ""
    reason = reason_from_message(message)
    if reason is None:
        from_event = _event_message(events, image)
        if from_event:
            message = from_event
            reason = reason_from_message(from_event)
    if waiting.get("reason") == _INVALID_NAME:
        reason = FailureReason.IMAGE_NOT_FOUND
    return Verdict(
        done=reason in TERMINAL_PULL_REASONS,
        reason=reason or FailureReason.IMAGE_PULL_BACKOFF,
        image=image,
        message=trim(message),
    )


def classify_pod(
    pod: dict[str, Any],
    *,
    now: datetime,
    unschedulable_grace: float,
    events: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> Verdict:
    """The node's outcome so far. A terminal pull error ends the node at once (done=True)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase = status.get("phase")
    if phase == "Succeeded":
        return SUCCEEDED
    images = {
        c["name"]: c.get("image", "")
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
    }
    statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    pending_error: Verdict | None = None
    for cs in statuses:
        image = images.get(cs.get("name", ""), cs.get("image", ""))
        state = cs.get("state") or {}
        term, waiting = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode", 0) != 0:
            text = term.get("message") or term.get("reason") or "Error"
            return Verdict(
                done=True,
                reason=FailureReason.CONTAINER_FAILED,
                image=image,
                message=trim(f"exit code {term.get('exitCode')}: {text}"),
            )
        if not waiting:
            continue
        why = waiting.get("reason", "")
        if why in _PULL_WAITING or why == _INVALID_NAME:
            verdict = _pull_failure(image, waiting, list(events))
            if verdict.done:
                return verdict
            pending_error = pending_error or verdict
        elif why in _START_WAITING:
            return Verdict(
                done=True,
                reason=FailureReason.CONTAINER_FAILED,
                image=image,
                message=trim(f"{why}: {waiting.get('message', '')}".rstrip(": ")),
            )
    if phase == "Failed":
        if status.get("reason") == "DeadlineExceeded":
            return timeout_verdict(pending_error, status.get("message") or "")
        return Verdict(
            done=True,
            reason=FailureReason.CONTAINER_FAILED,
            message=trim(status.get("message") or status.get("reason") or "pod failed"),
        )
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            since = _parse_time(cond.get("lastTransitionTime"))
            waited = (now - since).total_seconds() if since else 0.0
            message = trim(cond.get("message") or "pod is unschedulable")
            return Verdict(
                done=waited >= unschedulable_grace,
                reason=FailureReason.UNSCHEDULABLE,
                message=message,
            )
    return pending_error or RUNNING


def timeout_verdict(last_error: Verdict | None, detail: str = "") -> Verdict:
    """DeadlineExceeded: the last pull error's own code if one was seen (RateLimited,
    ImagePullBackOff), else Timeout (a pull that was simply too slow)."""
    if last_error is not None and last_error.reason is not None:
        return Verdict(
            done=True,
            reason=last_error.reason,
            image=last_error.image,
            message=trim(f"deadline exceeded while retrying: {last_error.message}"),
        )
    return Verdict(
        done=True,
        reason=FailureReason.TIMEOUT,
        message=trim(detail or "deadline exceeded (activeDeadlineSeconds) before all pulls ended"),
    )


def job_verdict(job: dict[str, Any], last_error: Verdict | None) -> Verdict:
    """The outcome from the Job once its pod is gone (deadline kill, TTL, deletion)."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return SUCCEEDED
        if cond.get("type") in ("Failed", "FailureTarget"):
            if cond.get("reason") == "DeadlineExceeded":
                return timeout_verdict(last_error, cond.get("message") or "")
            return Verdict(
                done=True,
                reason=FailureReason.CONTAINER_FAILED,
                image=last_error.image if last_error else None,
                message=trim(cond.get("message") or cond.get("reason") or "Job failed"),
            )
    return RUNNING
