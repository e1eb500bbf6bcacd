"""The REST API's wire models, shared by the API, the engine and the Python client.

This package is the one source of truth for the JSON contract (camelCase on the wire, as the
original Go service). It imports only pydantic and the standard library, because the
`ips_client` distribution ships a byte-identical copy of it (client/python/ips_client/models/:
`make client-models` writes it, tests/client/test_unit.py checks it). The engine's own
types (the workflow's input and state, the activities' inputs and outputs) are in
common/engine.py.

One module per idea, all importable from here (`from common.models import TaskSpec`):
- `wire`: the camelCase base model, RFC 3339 datetimes, field paths as the API words them;
- `validators`: image references, label keys and values, DNS-1123 names;
- `spec`: the task spec (the POST body) and its limits;
- `failures`: why a node failed or was skipped;
- `follow`: follow mode's option and what a following task shows;
- `tasks`: the task as the API returns it (status, progress, view, list, cancel, errors).
"""

from .failures import FailedNodeDetail, FailureReason, SkippedNodeDetail, SkipReason
from .follow import FOLLOW_SECONDS_MAX, FOLLOW_SECONDS_MIN, Following, FollowSpec, TaskPhase
from .spec import (
    NODE_NAMES_MAX_TOTAL_CHARS,
    NODE_SELECTOR_MAX_ENTRIES,
    TOLERATION_SECONDS_MAX,
    ImagePullPolicy,
    Pacing,
    Strategy,
    TaintEffect,
    TaskSpec,
    Toleration,
    TolerationOperator,
)
from .tasks import (
    CancelResult,
    ErrorBody,
    Progress,
    ProgressSummary,
    ResolvedImageRef,
    TaskCreated,
    TaskList,
    TaskStatus,
    TaskSummary,
    TaskView,
)
from .validators import (
    DIGEST_HEX_LENGTHS,
    IMAGE_REFERENCE_MAX,
    IMAGE_REFERENCE_RE,
    NAME_TOTAL_LENGTH_MAX,
    ImageRef,
    NodeName,
    SecretName,
    validate_dns1123_subdomain,
    validate_image_reference,
    validate_label_key,
    validate_label_value,
)
from .wire import UtcDatetime, WireModel, field_path, rfc3339, utcnow

__all__ = [
    "DIGEST_HEX_LENGTHS",
    "FOLLOW_SECONDS_MAX",
    "FOLLOW_SECONDS_MIN",
    "IMAGE_REFERENCE_MAX",
    "IMAGE_REFERENCE_RE",
    "NAME_TOTAL_LENGTH_MAX",
    "NODE_NAMES_MAX_TOTAL_CHARS",
    "NODE_SELECTOR_MAX_ENTRIES",
    "TOLERATION_SECONDS_MAX",
    "CancelResult",
    "ErrorBody",
    "FailedNodeDetail",
    "FailureReason",
    "FollowSpec",
    "Following",
    "ImagePullPolicy",
    "ImageRef",
    "NodeName",
    "Pacing",
    "Progress",
    "ProgressSummary",
    "ResolvedImageRef",
    "SecretName",
    "SkipReason",
    "SkippedNodeDetail",
    "Strategy",
    "TaintEffect",
    "TaskCreated",
    "TaskList",
    "TaskPhase",
    "TaskSpec",
    "TaskStatus",
    "TaskSummary",
    "TaskView",
    "Toleration",
    "TolerationOperator",
    "UtcDatetime",
    "WireModel",
    "field_path",
    "rfc3339",
    "utcnow",
    "validate_dns1123_subdomain",
    "validate_image_reference",
    "validate_label_key",
    "validate_label_value",
]
