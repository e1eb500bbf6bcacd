"""Follow mode on the wire: the `follow` option of a task, and what a following task shows."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field

from .wire import UtcDatetime, WireModel

FOLLOW_SECONDS_MIN = 10
FOLLOW_SECONDS_MAX = 7 * 24 * 3600  # a week; longer: `{}` (until cancelled), or a schedule


class FollowSpec(WireModel):
    """`{"durationSeconds": N}`: after the first sweep, keep prewarming the nodes that join or
    become eligible for N seconds; `{}`: until the task is cancelled."""

    model_config = ConfigDict(extra="forbid")

    duration_seconds: int | None = Field(
        default=None,
        ge=FOLLOW_SECONDS_MIN,
        le=FOLLOW_SECONDS_MAX,
        description=f"How long to follow after the first sweep ({FOLLOW_SECONDS_MIN}-"
        f"{FOLLOW_SECONDS_MAX} s); omitted: until cancelled.",
    )


class TaskPhase(StrEnum):
    """Where a running task with `follow` is: its first sweep, or following new nodes."""

    SWEEPING = "sweeping"
    FOLLOWING = "following"


class Following(WireModel):
    """Since when the task follows new nodes, and how many it has added."""

    since: UtcDatetime
    nodes_added: int = 0
