"""From a pull pod's status (and its Events) to one node outcome with one reason code (pure).

The container runtime's message carries the specific cause as a gRPC code or an HTTP status
(`code = NotFound`, `401 Unauthorized`, `429 Too Many Requests`), read from its error part only
(activities/pullmessage.py); when the waiting message has degraded to "Back-off pulling image",
the pod's `Failed` Events for that container and image are read as well. A pod the cluster
removed is judged by who removed it (activities/disruption.py), never by its exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from activities.disruption import disruption, stopped_by_the_cluster
from activities.pullmessage import names_image, reason_from_message
from common.engine import trim
from common.models import FailureReason

_PULL_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"})
# The kubelet retries these on its next sync (the container was never created), so they are
# pending errors, like a pull back-off; they name the node's reason only at the deadline.
_CREATE_WAITING = frozenset({"CreateContainerError", "CreateContainerConfigError"})
# A created container that could not start is not retried under restartPolicy Never.
_START_WAITING = frozenset({"RunContainerError", "StartError"})
_INVALID_NAME = "InvalidImageName"
# The kubelet would retry these forever with the same answer: the node fails at once. An image
# without the node's platform cannot be pulled on that node by any retry either.
TERMINAL_PULL_REASONS = frozenset(
    {
        FailureReason.IMAGE_NOT_FOUND,
        FailureReason.UNAUTHORIZED,
        FailureReason.NO_MATCHING_PLATFORM,
    }
)


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


def _container_of(event: dict[str, Any]) -> str | None:
    """The container an Event is about: the kubelet sets involvedObject.fieldPath to
    `spec.containers{name}` or `spec.initContainers{name}`."""
    path = (event.get("involvedObject") or {}).get("fieldPath") or ""
    if path.endswith("}") and "{" in path:
        return path[path.index("{") + 1 : -1]
    return None


def _event_message(events: list[dict[str, Any]], container: str, image: str) -> str | None:
    """The newest `Failed` Event for this container whose message names exactly this image
    (parsed and normalized, never a substring: `app:1` is not `app:10`)."""
    best: tuple[str, str] | None = None
    for ev in events:
        msg = ev.get("message") or ""
        if ev.get("reason") != "Failed" or not names_image(msg, image):
            continue
        named = _container_of(ev)
        if named is not None and named != container:
            continue
        stamp = ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("firstTimestamp") or ""
        if best is None or stamp >= best[0]:
            best = (stamp, msg)
    return best[1] if best else None


def _pull_failure(
    container: str, image: str, waiting: dict[str, Any], events: list[dict[str, Any]]
) -> Verdict:
    message = waiting.get("message") or waiting.get("reason") or ""
    reason = reason_from_message(message, image)
    if reason is None:
        from_event = _event_message(events, container, image)
        if from_event:
            message = from_event
            reason = reason_from_message(from_event, image)
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
    """The node's outcome so far. A terminal pull error ends the node at once (done=True).

    A pod the cluster removed (activities/disruption.py) is judged by who removed it; one that
    is being deleted or lost its containers for another cause is RUNNING here, so the caller
    asks the Job (`job_verdict`, with the pull error seen before): its exit codes say how it
    was stopped, not how the pull went.
    """
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase = status.get("phase")
    if phase == "Succeeded":
        return SUCCEEDED
    removed = disruption(pod)
    if removed is not None:
        return Verdict(done=True, reason=removed[0], message=trim(removed[1]))
    if stopped_by_the_cluster(pod):
        return RUNNING
    images = {
        c["name"]: c.get("image", "")
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
    }
    statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    pending_error: Verdict | None = None
    for cs in statuses:
        name = cs.get("name", "")
        image = images.get(name, cs.get("image", ""))
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
            verdict = _pull_failure(name, image, waiting, list(events))
            if verdict.done:
                return verdict
            pending_error = pending_error or verdict
        elif why in _CREATE_WAITING:
            pending_error = pending_error or Verdict(
                done=False,
                reason=FailureReason.CREATE_CONTAINER_ERROR,
                image=image,
                message=trim(f"{why}: {waiting.get('message', '')}".rstrip(": ")),
            )
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


def _retrying(last_error: Verdict | None, what: str) -> Verdict | None:
    """The pull error seen before, when there was one, names the reason of a Job that ended
    otherwise (`what`: how it ended), so a deadline or a deleted pod does not hide it."""
    if last_error is None or last_error.reason is None:
        return None
    return Verdict(
        done=True,
        reason=last_error.reason,
        image=last_error.image,
        message=trim(f"{what} while retrying: {last_error.message}"),
    )


def timeout_verdict(last_error: Verdict | None, detail: str = "") -> Verdict:
    """DeadlineExceeded: the last pull error's own code if one was seen (RateLimited,
    ImagePullBackOff), else Timeout (a pull that was simply too slow)."""
    if (retrying := _retrying(last_error, "deadline exceeded")) is not None:
        return retrying
    return Verdict(
        done=True,
        reason=FailureReason.TIMEOUT,
        message=trim(detail or "deadline exceeded (activeDeadlineSeconds) before all pulls ended"),
    )


def job_verdict(job: dict[str, Any], last_error: Verdict | None) -> Verdict:
    """The outcome from the Job once its pod is gone or was stopped (deadline, deletion).

    At the deadline the pull error seen before names the reason (timeout_verdict). A Job that
    failed otherwise (its pod was deleted or failed: `BackoffLimitExceeded` with backoffLimit 0)
    also keeps the pull error seen before when there was one; only without one is it a
    container failure.
    """
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return SUCCEEDED
        if cond.get("type") in ("Failed", "FailureTarget"):
            detail = cond.get("message") or cond.get("reason") or "Job failed"
            if cond.get("reason") == "DeadlineExceeded":
                return timeout_verdict(last_error, cond.get("message") or "")
            if (retrying := _retrying(last_error, f"{detail},")) is not None:
                return retrying
            return Verdict(
                done=True,
                reason=FailureReason.CONTAINER_FAILED,
                image=last_error.image if last_error else None,
                message=trim(detail),
            )
    return RUNNING
