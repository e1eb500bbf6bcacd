"""Activity names and their input/output models: the one contract between workflow and activities.

The workflow calls activities by name, so it never imports activity code (which talks to
Kubernetes); tests register mocks under the same names.
"""

from __future__ import annotations

from pydantic import Field

from common.models import (
    FailedNodeDetail,
    ImagePullPolicy,
    SkippedNodeDetail,
    TaskSpec,
    Toleration,
    WireModel,
)

ACTIVITY_LIST_NODES = "list_nodes"
ACTIVITY_PREWARM_NODES = "prewarm_nodes"
ACTIVITY_CLEANUP = "cleanup_task"
SIGNAL_NODE_OUTCOMES = "node_outcomes"

# Messages longer than this are cut where they are produced (kubelet messages can be long).
MAX_MESSAGE_CHARS = 256


def trim(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


class ListNodesInput(WireModel):
    task_id: str
    spec: TaskSpec


class MissingNodes(WireModel):
    """GROUP_SIZE (or fewer) nodeNames that do not exist, by their sorted range."""

    first: str
    last: str
    count: int


class NodeSelection(WireModel):
    """The outcome of the one node listing: what to pull, what is warm, what is skipped."""

    matched: int = 0
    targets: list[str] = Field(default_factory=list, description="Sorted; each needs a Job.")
    hostnames: dict[str, str] = Field(
        default_factory=dict,
        description="kubernetes.io/hostname label, only where it differs from the node name.",
    )
    warm: int = 0
    skipped: list[SkippedNodeDetail] = Field(default_factory=list)
    skipped_count: int = Field(
        default=0, description="Skipped nodes when `skipped` lists them in groups (else 0)."
    )
    skipped_by_reason: dict[str, int] = Field(default_factory=dict)
    missing: list[str] = Field(default_factory=list, description="nodeNames that do not exist.")
    missing_groups: list[MissingNodes] = Field(
        default_factory=list, description="Instead of `missing` when there are many."
    )

    @property
    def missing_count(self) -> int:
        return len(self.missing) + sum(g.count for g in self.missing_groups)


class PullSpec(WireModel):
    """What a batch needs of the task spec to build its Jobs: never `nodeNames` (up to 10,000
    names), which would otherwise be copied into every batch's input in the history.

    Inputs scheduled before this model carry the whole TaskSpec: its other fields are ignored.
    """

    images: list[str]
    image_pull_policy: ImagePullPolicy = ImagePullPolicy.IF_NOT_PRESENT
    image_pull_secrets: list[str] = Field(default_factory=list)
    tolerations: list[Toleration] = Field(default_factory=list)
    timeout_seconds: int = 600

    @classmethod
    def of(cls, spec: TaskSpec) -> PullSpec:
        return cls(
            images=list(spec.images),
            image_pull_policy=spec.image_pull_policy,
            image_pull_secrets=list(spec.image_pull_secrets),
            tolerations=list(spec.tolerations),
            timeout_seconds=spec.timeout_seconds,
        )


class PrewarmNodesInput(WireModel):
    """One batch (or rolling window) of nodes for one long-running activity."""

    task_id: str
    unit: int = Field(description="1-based batch or window number.")
    total_units: int
    nodes: list[str]
    hostnames: dict[str, str] = Field(default_factory=dict)
    spec: PullSpec
    in_flight: int = Field(ge=1, description="Jobs kept in flight at once.")


class NodeOutcome(WireModel):
    node_name: str
    ok: bool
    failure: FailedNodeDetail | None = None


class NodeOutcomes(WireModel):
    """Signalled by the running activity (debounced to one a second) so progress moves live."""

    unit: int
    outcomes: list[NodeOutcome]


class PrewarmNodesResult(WireModel):
    unit: int
    outcomes: list[NodeOutcome] = Field(default_factory=list)
    jobs_created: int = 0
    jobs_adopted: int = 0


class CleanupInput(WireModel):
    task_id: str


class CleanupResult(WireModel):
    jobs_deleted: int = 0
    pods_awaiting_gc: int = 0  # histories before this field carry podsDeleted (ignored)
