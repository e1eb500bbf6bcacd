"""The engine's contract: the workflow's input and state, the activity names, and the
activities' inputs and outputs. Both sides import it: the workflow calls activities by name,
so it never imports activity code (which talks to Kubernetes), and tests register mocks under
the same names. The API imports `PrewarmInput` from here to start workflows.

These models are payloads in workflow histories, not part of the REST API: the client package
(ips_client) ships only the wire models (common/models/ and common/schedule_models.py).
The schedule launcher workflow's input and result are here too.
"""

from __future__ import annotations

from pydantic import Field

from common.models import (
    FailedNodeDetail,
    ImagePullPolicy,
    Progress,
    SkippedNodeDetail,
    TaskSpec,
    TaskStatus,
    Toleration,
    UtcDatetime,
    WireModel,
)
from common.pacing import AimdWindow
from common.preflight import ResolvedImage
from common.schedule_models import ScheduleWhen

ACTIVITY_LIST_NODES = "list_nodes"
ACTIVITY_PREWARM_NODES = "prewarm_nodes"
ACTIVITY_CLEANUP = "cleanup_task"
ACTIVITY_FOLLOW_NODES = "follow_nodes"
SIGNAL_NODE_OUTCOMES = "node_outcomes"

# Messages longer than this are cut where they are produced (kubelet messages can be long).
MAX_MESSAGE_CHARS = 256


def trim(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


class ListNodesInput(WireModel):
    """The listing's input. `resolved` (the preflight's answer, issue 16) adds the platform and
    disk checks and the warm-by-digest match; inputs from before it carry none."""

    task_id: str
    spec: TaskSpec
    resolved: list[ResolvedImage] = Field(default_factory=list)
    pin_digests: bool = Field(
        default=False, description="Pods pull `name@digest`: a tag alone never proves warm."
    )


class MissingNodes(WireModel):
    """GROUP_SIZE (or fewer) nodeNames that do not exist, by their sorted range."""

    first: str
    last: str
    count: int


class NodeSelection(WireModel):
    """The outcome of the one node listing: what to pull, what is warm, what is skipped."""

    matched: int = 0
    targets: list[str] = Field(default_factory=list, description="Sorted; each needs a Job.")
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
    resource_version: str = Field(
        default="",
        description="The listing's resourceVersion: follow mode watches from here, so no node "
        "that joins during the sweep is missed (histories before follow mode lack it).",
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
    spec: PullSpec
    in_flight: int = Field(ge=1, description="Jobs kept in flight at once.")
    pacing: AimdWindow | None = Field(
        default=None,
        description="The AIMD window to start from (issue 16); None: a fixed `in_flight`.",
    )


class NodeOutcome(WireModel):
    node_name: str
    ok: bool
    failure: FailedNodeDetail | None = None


class NodeOutcomes(WireModel):
    """Signalled by the running activity (debounced to one a second) so progress moves live."""

    unit: int
    outcomes: list[NodeOutcome]
    pacing: AimdWindow | None = Field(default=None, description="The window after them.")
    joined: list[str] = Field(
        default_factory=list,
        description="Follow mode: nodes the follow unit took since its last signal (the task "
        "adds them: totalNodes and nodesAdded grow live).",
    )


class PrewarmNodesResult(WireModel):
    unit: int
    outcomes: list[NodeOutcome] = Field(default_factory=list)
    jobs_created: int = 0
    jobs_adopted: int = 0
    pacing: AimdWindow | None = None


class FollowNodesInput(WireModel):
    """One follow unit (activities/follow.py): watch the nodes from `resource_version` and
    prewarm each newly eligible node at once, at most `in_flight` Jobs unfinished, until
    `until` passes or `max_nodes` nodes were taken; then finish the Jobs in flight and return.
    `covered` are the nodes the task already has: never taken again. An empty
    `resource_version` relists."""

    task_id: str
    unit: int = Field(ge=1, description="The unit's number: its Jobs' unit label.")
    node_selector: dict[str, str] = Field(default_factory=dict)
    spec: PullSpec = Field(description="The task's images: which nodes are already warm.")
    pull: PullSpec = Field(description="What the Jobs pull (pinned by digest with pinDigests).")
    resource_version: str = ""
    covered: list[str] = Field(default_factory=list)
    in_flight: int = Field(ge=1)
    max_nodes: int = Field(ge=1)
    until: UtcDatetime
    pacing: AimdWindow | None = None
    # The preflight's answer (issue 16): a joined node is checked for platform and disk, and
    # counted warm by digest, as the first sweep's nodes were.
    resolved: list[ResolvedImage] = Field(default_factory=list)
    pin_digests: bool = False


class FollowNodesResult(WireModel):
    """The unit's nodes (`joined`, in the order taken), the outcomes not signalled yet, and
    where the next unit resumes. An empty `resource_version` asks the next unit to relist."""

    unit: int
    joined: list[str] = Field(default_factory=list)
    outcomes: list[NodeOutcome] = Field(default_factory=list)
    resource_version: str = ""
    gone: list[str] = Field(
        default_factory=list,
        description="Covered nodes seen deleted: the workflow forgets them, so `covered` "
        "stays bounded and a node that rejoins under the same name is prewarmed again.",
    )
    pacing: AimdWindow | None = None
    relists: int = 0
    events: int = 0


class CleanupInput(WireModel):
    task_id: str


class CleanupResult(WireModel):
    jobs_deleted: int = 0
    pods_awaiting_gc: int = 0  # histories before this field carry podsDeleted (ignored)


# The workflow's input and state ---------------------------------------------------------


class EngineState(WireModel):
    """Everything PrewarmWorkflow carries across continue-as-new, kept compact at 5,000 nodes.

    Only the nodes still to pull are carried (`pending`), never a node-by-image matrix; failure
    messages are trimmed as they are recorded (see docs/engine.md, "Limits").
    """

    status: TaskStatus = TaskStatus.PENDING
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    message: str | None = None
    listed: bool = False
    pending: list[str] = Field(default_factory=list)
    units_done: int = 0
    progress: Progress = Field(default_factory=Progress)
    failed_node_details: list[FailedNodeDetail] = Field(default_factory=list)
    skipped_node_details: list[SkippedNodeDetail] = Field(default_factory=list)
    runs: int = 1
    events_in_previous_runs: int = 0
    units_per_run: int = Field(
        default=0, ge=0, description="Continue as new after this many batches; 0 = engine default."
    )
    # Issue 16 (gated by the `preflight-v1` patch; runs before it carry the defaults).
    registry_aware: bool = Field(
        default=False, description="This task runs the preflight, pinning and pacing."
    )
    resolved_images: list[ResolvedImage] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    pacing: AimdWindow | None = None
    # Follow mode (workflows/follow.py); all empty unless the task has `follow`.
    following_since: UtcDatetime | None = Field(
        default=None, description="When the follow phase began (after the first sweep)."
    )
    nodes_added: int = 0
    follow_rv: str = Field(default="", description="Where the next watch round resumes.")
    covered: list[str] = Field(
        default_factory=list,
        description="Nodes the task has (sweep targets and joined nodes), never returned again.",
    )
    follow_rounds: int = 0


class PrewarmInput(WireModel):
    """The single input of PrewarmWorkflow. `state` is set only when continuing as new."""

    task_id: str
    spec: TaskSpec
    created_at: UtcDatetime
    state: EngineState | None = Field(
        default=None, description="Engine state carried across continue-as-new."
    )


class LauncherInput(WireModel):
    """The input of ScheduleLauncherWorkflow, the schedule's action: the task to start and the
    schedule's definition as the client gave it (Temporal describes a cron compiled into
    calendars, so this is what GET returns)."""

    schedule_id: str
    owner: str
    spec: TaskSpec
    when: ScheduleWhen


class LauncherResult(WireModel):
    task_id: str
    status: TaskStatus
