"""The task as the API returns it: status, progress, the full view, the list, cancel and errors."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from .failures import FailedNodeDetail, SkippedNodeDetail
from .follow import Following, FollowSpec, TaskPhase
from .spec import ImagePullPolicy, Pacing, Strategy
from .wire import UtcDatetime, WireModel


class TaskStatus(StrEnum):
    """Task lifecycle; exactly one of the last three is final."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class Progress(WireModel):
    total_nodes: int = 0
    completed_nodes: int = 0
    failed_nodes: int = 0
    skipped_nodes: int = 0
    already_warm_nodes: int = 0
    current_batch: int = 0
    total_batches: int = 0
    percentage: float = 0.0
    in_flight_window: int | None = Field(
        default=None,
        description="Jobs kept in flight at most now: batchSize, halved on a registry's 429s, "
        "grown back as pulls succeed (absent for tasks from before the registry preflight).",
    )

    @staticmethod
    def compute_percentage(total: int, completed: int, failed: int, warm: int) -> float:
        """completed + failed + warm over total, one decimal; an empty task is 0."""
        if total <= 0:
            return 0.0
        return round(100.0 * (completed + failed + warm) / total, 1)


class ResolvedImageRef(WireModel):
    """An image as the registry resolved it before any Job (the preflight)."""

    image: str = Field(description="As the task asked for it.")
    digest: str = Field(description="Of the index (multi-platform) or of the manifest.")


class TaskView(WireModel):
    """The full task body: GET /api/v1/tasks/{id}, the `progress` query, and the workflow result."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "taskId": "task-20260116-151234-a1b2c3d4",
                    "status": "running",
                    "images": ["nginx:latest", "redis:7"],
                    "batchSize": 10,
                    "nodeSelector": {"workload": "compute"},
                    "progress": {
                        "totalNodes": 50,
                        "completedNodes": 25,
                        "failedNodes": 2,
                        "skippedNodes": 0,
                        "alreadyWarmNodes": 0,
                        "currentBatch": 3,
                        "totalBatches": 5,
                        "percentage": 54.0,
                    },
                    "failedNodeDetails": [
                        {
                            "nodeName": "node-5",
                            "image": "redis:7",
                            "reason": "ImagePullBackOff",
                            "message": 'Back-off pulling image "redis:7"',
                            "timestamp": "2026-01-16T15:15:30Z",
                        }
                    ],
                    "skippedNodeDetails": [],
                    "createdAt": "2026-01-16T15:12:34Z",
                    "startedAt": "2026-01-16T15:12:35Z",
                }
            ]
        }
    )

    task_id: str
    status: TaskStatus
    images: list[str]
    batch_size: int
    node_selector: dict[str, str] = Field(default_factory=dict)
    node_names: list[str] | None = None
    image_pull_policy: ImagePullPolicy = ImagePullPolicy.IF_NOT_PRESENT
    strategy: Strategy = Strategy.BATCH
    timeout_seconds: int = 600
    max_failure_ratio: float = 1.0
    pin_digests: bool = True
    pacing: Pacing = Pacing.ADAPTIVE
    progress: Progress = Field(default_factory=Progress)
    failed_node_details: list[FailedNodeDetail] = Field(default_factory=list)
    skipped_node_details: list[SkippedNodeDetail] = Field(default_factory=list)
    resolved_images: list[ResolvedImageRef] = Field(
        default_factory=list, description="Each image the registry preflight resolved."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What the preflight could not check (an unreachable registry, an "
        "unreadable pull secret): the task went on without it.",
    )
    created_at: UtcDatetime
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    message: str | None = None
    schedule_id: str | None = Field(
        default=None, description="The schedule that started this run (IpsScheduleId)."
    )
    follow: FollowSpec | None = Field(default=None, description="The task's follow option.")
    phase: TaskPhase | None = Field(
        default=None,
        description="A running task with `follow`: `sweeping` (its first sweep) or `following`.",
    )
    following: Following | None = Field(
        default=None,
        description="From the start of the follow phase: since when, and the nodes added.",
    )


class TaskCreated(WireModel):
    """The 201 body of POST /api/v1/tasks (the original example, plus nodeSelector)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "taskId": "task-20260116-151234-a1b2c3d4",
                    "status": "pending",
                    "images": ["nginx:latest", "redis:7"],
                    "batchSize": 10,
                    "nodeSelector": {"workload": "compute"},
                    "createdAt": "2026-01-16T15:12:34Z",
                }
            ]
        }
    )

    task_id: str
    status: TaskStatus
    images: list[str]
    batch_size: int
    node_selector: dict[str, str] = Field(default_factory=dict)
    created_at: UtcDatetime


class ProgressSummary(WireModel):
    total_nodes: int = 0
    completed_nodes: int = 0
    percentage: float = 0.0


class TaskSummary(WireModel):
    task_id: str
    status: TaskStatus
    images: list[str]
    progress: ProgressSummary = Field(default_factory=ProgressSummary)
    created_at: UtcDatetime
    schedule_id: str | None = None


class TaskList(WireModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tasks": [
                        {
                            "taskId": "task-20260116-151234-a1b2c3d4",
                            "status": "running",
                            "images": ["nginx:latest"],
                            "progress": {
                                "totalNodes": 50,
                                "completedNodes": 25,
                                "percentage": 50.0,
                            },
                            "createdAt": "2026-01-16T15:12:34Z",
                        }
                    ],
                    "total": 1,
                    "limit": 20,
                    "offset": 0,
                }
            ]
        }
    )

    tasks: list[TaskSummary]
    total: int
    limit: int
    offset: int


class CancelResult(WireModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "taskId": "task-20260116-151234-a1b2c3d4",
                    "status": "cancelled",
                    "message": "Task cancelled successfully",
                }
            ]
        }
    )

    task_id: str
    status: str = Field(description="cancelled, cancelling, or the final status on 409")
    message: str


class ErrorBody(BaseModel):
    """The one error envelope of the API."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"error": "invalid request", "details": "batchSize: must be <= 100"}]
        }
    )

    error: str
    details: str
    task_id: str | None = Field(default=None, serialization_alias="taskId")
