"""Why a node failed or was skipped: the reason codes operators troubleshoot by, and the details."""

from __future__ import annotations

from enum import StrEnum

from .wire import UtcDatetime, WireModel


class FailureReason(StrEnum):
    """One code per failed node; operators troubleshoot by this (docs/operations.md)."""

    IMAGE_NOT_FOUND = "ImageNotFound"
    # The image exists but offers no build for the node's OS/architecture (containerd's
    # "no match for platform in manifest"); the same wire string as SkipReason's, which the
    # registry preflight gives before any Job.
    NO_MATCHING_PLATFORM = "NoMatchingPlatform"
    UNAUTHORIZED = "Unauthorized"
    RATE_LIMITED = "RateLimited"
    IMAGE_PULL_BACKOFF = "ImagePullBackOff"
    UNSCHEDULABLE = "Unschedulable"
    NODE_NOT_READY = "NodeNotReady"
    NODE_GONE = "NodeGone"
    ADMISSION_DENIED = "AdmissionDenied"
    TIMEOUT = "Timeout"
    CONTAINER_FAILED = "ContainerFailed"
    CREATE_CONTAINER_ERROR = "CreateContainerError"
    EVICTED = "Evicted"
    PREEMPTED = "Preempted"


class SkipReason(StrEnum):
    NOT_READY = "NotReady"
    CORDONED = "Cordoned"
    TAINTED = "Tainted"
    NON_LINUX = "NonLinux"
    # Registry-aware checks (issue 16; activities/platforms.py).
    NO_MATCHING_PLATFORM = "NoMatchingPlatform"
    DISK_PRESSURE = "DiskPressure"
    INSUFFICIENT_DISK = "InsufficientDisk"


class FailedNodeDetail(WireModel):
    node_name: str
    image: str | None = None
    reason: FailureReason
    message: str = ""
    timestamp: UtcDatetime


class SkippedNodeDetail(WireModel):
    node_name: str
    reason: SkipReason
    message: str = ""
