"""Python client for the Image Prewarm Service (IPS) REST API.

    from ips_client import IPSClient

    with IPSClient("http://localhost:8080") as ips:
        task = ips.create(images=["nginx:latest"], batch_size=10)
        final = ips.wait(task.task_id, on_progress=lambda t: print(t.progress.percentage))

The response models are the API's own (`ips_client.models` is the server's models module).
"""

from ips_client._core import DEFAULT_URL, TASKS_PATH, task_path
from ips_client.client import AsyncIPSClient, IPSClient
from ips_client.errors import (
    APIError,
    Conflict,
    Forbidden,
    IPSError,
    ScheduleNotFound,
    ServiceUnavailable,
    TaskNotFound,
    TooManyTasks,
    Unauthorized,
    Unreachable,
    ValidationError,
    WaitTimeout,
)
from ips_client.models import (
    CancelResult,
    FailedNodeDetail,
    FailureReason,
    Following,
    FollowSpec,
    Pacing,
    Progress,
    SkippedNodeDetail,
    SkipReason,
    Strategy,
    TaskCreated,
    TaskList,
    TaskPhase,
    TaskSpec,
    TaskStatus,
    TaskSummary,
    TaskView,
    Toleration,
)
from ips_client.schedule_models import (
    Overlap,
    ScheduleCreated,
    ScheduleList,
    ScheduleSummary,
    ScheduleView,
)
from ips_client.schedules import SCHEDULES_PATH

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_URL",
    "SCHEDULES_PATH",
    "TASKS_PATH",
    "APIError",
    "AsyncIPSClient",
    "CancelResult",
    "Conflict",
    "FailedNodeDetail",
    "FailureReason",
    "FollowSpec",
    "Following",
    "Forbidden",
    "IPSClient",
    "IPSError",
    "Overlap",
    "Pacing",
    "Progress",
    "ScheduleCreated",
    "ScheduleList",
    "ScheduleNotFound",
    "ScheduleSummary",
    "ScheduleView",
    "ServiceUnavailable",
    "SkipReason",
    "SkippedNodeDetail",
    "Strategy",
    "TaskCreated",
    "TaskList",
    "TaskNotFound",
    "TaskPhase",
    "TaskSpec",
    "TaskStatus",
    "TaskSummary",
    "TaskView",
    "Toleration",
    "TooManyTasks",
    "Unauthorized",
    "Unreachable",
    "ValidationError",
    "WaitTimeout",
    "task_path",
]
