"""The task's one-line `message`: why it stopped, or what it did."""

from __future__ import annotations

from collections import Counter
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from common.engine import (
        ACTIVITY_CLEANUP,
        ACTIVITY_FOLLOW_NODES,
        ACTIVITY_LIST_NODES,
        ACTIVITY_PREWARM_NODES,
        EngineState,
        NodeSelection,
        trim,
    )
    from common.models import Progress

_RETRY_NOTES = {
    RetryState.MAXIMUM_ATTEMPTS_REACHED: "maximum attempts reached",
    RetryState.TIMEOUT: "retries timed out",
}


def completion_message(state: EngineState) -> str:
    progress = state.progress
    text = (
        f"{progress.completed_nodes} nodes prewarmed, "
        f"{progress.already_warm_nodes} already warm, "
        f"{progress.failed_nodes} failed, {progress.skipped_nodes} skipped"
    )
    if state.following_since is not None:
        text += f"; {state.nodes_added} nodes joined while following"
    return text


def failure_ratio_message(progress: Progress, share: float, ratio: float) -> str:
    return (
        f"{progress.failed_nodes} of {progress.total_nodes} nodes failed ({share:.0%}), "
        f"more than maxFailureRatio {ratio:g}: stopped creating Jobs"
    )


def no_match_message(spec: Any) -> str:
    what = f"nodeNames {spec.node_names[:5]}" if spec.node_names else selector(spec)
    return f"no node matches {what}"


def all_skipped_message(selection: NodeSelection) -> str:
    reasons = Counter(s.reason.value for s in selection.skipped)
    if selection.skipped_by_reason:
        reasons = Counter(selection.skipped_by_reason)
    parts = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
    return (
        f"none of the {selection.matched} matching nodes can be prewarmed: "
        f"all were skipped ({parts})"
    )


def selector(spec: Any) -> str:
    if not spec.node_selector:
        return "any node (empty nodeSelector)"
    return "nodeSelector " + ",".join(f"{k}={v}" for k, v in sorted(spec.node_selector.items()))


def failure_reason(err: BaseException) -> str:
    """A one-line reason for `message`, from the innermost Temporal failure."""
    step = ""
    if isinstance(err, ActivityError):
        step = {
            ACTIVITY_LIST_NODES: "listing nodes",
            ACTIVITY_PREWARM_NODES: "prewarming a batch",
            ACTIVITY_CLEANUP: "cleaning up",
            ACTIVITY_FOLLOW_NODES: "following nodes",
        }.get(err.activity_type, err.activity_type)
    cause: BaseException | None = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError):
        detail = cause.message
    elif isinstance(cause, TemporalTimeoutError):
        detail = f"activity timed out ({cause.type.name if cause.type else 'timeout'})"
    else:
        detail = str(cause or err)
    retry = ""
    if isinstance(err, ActivityError) and err.retry_state in _RETRY_NOTES:
        retry = f" [{_RETRY_NOTES[err.retry_state]}]"
    return trim(f"{step} failed: {detail}{retry}" if step else detail)
