"""The REST API's wire models, shared by the API, the engine and the Python client.

This module is the one source of truth for the JSON contract (camelCase on the wire, as the
original Go service). It imports only pydantic and the standard library, because the
`ips_client` distribution ships a byte-identical copy of it (client/python/ips_client/models.py:
`make client-models` writes it, tests/client/test_unit.py checks it). The engine's own
types (the workflow's input and state, the activities' inputs and outputs) are in
common/engine.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

# --------------------------------------------------------------------------------------
# Enumerations
# --------------------------------------------------------------------------------------


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


class Strategy(StrEnum):
    BATCH = "batch"
    ROLLING = "rolling"


class ImagePullPolicy(StrEnum):
    IF_NOT_PRESENT = "IfNotPresent"
    ALWAYS = "Always"


class FailureReason(StrEnum):
    """One code per failed node; operators troubleshoot by this (docs/operations.md)."""

    IMAGE_NOT_FOUND = "ImageNotFound"
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


class TolerationOperator(StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


# --------------------------------------------------------------------------------------
# Validators (reference grammar and Kubernetes names)
# --------------------------------------------------------------------------------------

# The distribution/reference grammar (github.com/distribution/reference, regexp.go).
_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
# The tag grammar in ASCII (Python's \w would admit any Unicode letter).
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
# Only the digest algorithms runtimes verify (opencontainers/go-digest), each at its exact
# length in lowercase hex: an unbounded digest once made a 1 MB Job manifest per node.
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST = "|".join(f"{alg}:[0-9a-f]{{{n}}}" for alg, n in DIGEST_HEX_LENGTHS.items())
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
# Always used with fullmatch: `$` would also accept a trailing newline.
IMAGE_REFERENCE_RE = re.compile(
    rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?", re.ASCII
)
NAME_TOTAL_LENGTH_MAX = 255
# name (255) + ":" + tag (128) + "@sha512:" + 128 hex: nothing valid is longer.
IMAGE_REFERENCE_MAX = NAME_TOTAL_LENGTH_MAX + 1 + 128 + 1 + len("sha512:") + 128
NODE_SELECTOR_MAX_ENTRIES = 32
# nodeNames in all: the task's result echoes them and names each missing one in a failure
# detail, and a Temporal payload may not exceed 2 MB (a 10,000 x 96-character list made a 3 MB
# result the workflow could never complete).
NODE_NAMES_MAX_TOTAL_CHARS = 320_000
TOLERATION_SECONDS_MAX = 86400

_LABEL_NAME_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS1123_SUBDOMAIN_RE = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)


def validate_image_reference(ref: str) -> str:
    """Reject what a container runtime would reject, with the rule in the message."""
    ref = ref.strip()
    if not ref:
        raise ValueError("image reference must not be empty")
    if len(ref) > IMAGE_REFERENCE_MAX:
        raise ValueError(
            f"image reference of {len(ref)} characters: at most {IMAGE_REFERENCE_MAX} allowed"
        )
    m = IMAGE_REFERENCE_RE.fullmatch(ref)
    if m is None:
        raise ValueError(
            f"{ref!r} is not a valid image reference "
            "(expected [registry[:port]/]name[:tag][@digest], lowercase name components, "
            "an ASCII tag, a sha256/sha384/sha512 digest of 64/96/128 lowercase hex)"
        )
    if len(m.group("name")) > NAME_TOTAL_LENGTH_MAX:
        raise ValueError(
            f"{ref!r}: repository name must be at most {NAME_TOTAL_LENGTH_MAX} characters"
        )
    return ref


def validate_label_key(key: str) -> str:
    prefix, sep, name = key.rpartition("/")
    if sep:
        if not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
            raise ValueError(
                f"label key {key!r}: prefix must be a DNS-1123 subdomain of at most 253 characters"
            )
    if not name or len(name) > 63 or not _LABEL_NAME_RE.fullmatch(name):
        raise ValueError(
            f"label key {key!r}: name must be 1-63 characters, alphanumeric at both ends, "
            "with '-', '_' or '.' between"
        )
    return key


def validate_label_value(value: str) -> str:
    if value == "":
        return value
    if len(value) > 63 or not _LABEL_NAME_RE.fullmatch(value):
        raise ValueError(
            f"label value {value!r}: must be at most 63 characters, alphanumeric at both ends, "
            "with '-', '_' or '.' between"
        )
    return value


def validate_dns1123_subdomain(name: str) -> str:
    if not name or len(name) > 253 or not _DNS1123_SUBDOMAIN_RE.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a valid DNS-1123 subdomain "
            "(lowercase alphanumerics, '-' and '.', at most 253 characters)"
        )
    return name


# The same rules in the OpenAPI schema (ECMA-262 regex: no named groups), so clients and
# schema-driven tools see them; validation itself stays in the validators above.
_IMAGE_PATTERN = r"^\s*" + re.sub(r"\(\?P<\w+>", "(", IMAGE_REFERENCE_RE.pattern) + r"\s*$"
_DNS1123_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 253,
    "pattern": f"^{_DNS1123_SUBDOMAIN_RE.pattern}$",
}
ImageRef = Annotated[
    str,
    AfterValidator(validate_image_reference),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": IMAGE_REFERENCE_MAX,
            "pattern": _IMAGE_PATTERN,
        }
    ),
]
NodeName = Annotated[
    str, AfterValidator(validate_dns1123_subdomain), WithJsonSchema(_DNS1123_SCHEMA)
]
SecretName = Annotated[
    str, AfterValidator(validate_dns1123_subdomain), WithJsonSchema(_DNS1123_SCHEMA)
]


_REQUEST_PARTS = ("body", "query", "path", "header")


def field_path(loc: Sequence[int | str], *, camel: bool = False) -> str:
    """A validation error's location as the API words it: ('body', 'images', 0) -> images[0].

    `camel` turns Python field names into wire names (the client validates by field name).
    """
    parts = list(loc)
    if parts and parts[0] in _REQUEST_PARTS:
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            name = to_camel(p) if camel else str(p)
            out += f".{name}" if out else name
    return out


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(dt: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z suffix and whole seconds, as the original service emitted."""
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------
# Base model
# --------------------------------------------------------------------------------------


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; datetimes serialize as RFC 3339 UTC."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        use_enum_values=False,
    )


UtcDatetime = Annotated[
    datetime,
    AfterValidator(lambda d: d if d.tzinfo else d.replace(tzinfo=UTC)),
    # Whole seconds with a Z, as the original service's examples (2026-01-16T15:12:34Z).
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


# --------------------------------------------------------------------------------------
# Task spec (the POST body)
# --------------------------------------------------------------------------------------


class Toleration(WireModel):
    """A core/v1 Toleration."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = None
    operator: TolerationOperator = TolerationOperator.EQUAL
    value: str | None = None
    effect: TaintEffect | None = None
    toleration_seconds: int | None = Field(default=None, ge=0, le=TOLERATION_SECONDS_MAX)

    @model_validator(mode="after")
    def _check(self) -> Toleration:
        if self.key:
            validate_label_key(self.key)
        if self.value:
            validate_label_value(self.value)
        if self.operator == TolerationOperator.EXISTS and self.value:
            raise ValueError("toleration with operator Exists must not set a value")
        if self.operator == TolerationOperator.EQUAL and not self.key:
            raise ValueError("toleration with operator Equal needs a key")
        if self.toleration_seconds is not None and self.effect != TaintEffect.NO_EXECUTE:
            raise ValueError("tolerationSeconds is only valid with effect NoExecute")
        return self

    def tolerates(self, key: str, value: str | None, effect: str) -> bool:
        """Kubernetes' ToleratesTaint: no effect matches all; no key with Exists matches all."""
        if self.effect is not None and self.effect.value != effect:
            return False
        if not self.key:
            return self.operator == TolerationOperator.EXISTS
        if self.key != key:
            return False
        if self.operator == TolerationOperator.EXISTS:
            return True
        return (self.value or "") == (value or "")


_EXAMPLE_SPEC: dict[str, Any] = {
    "images": ["nginx:latest", "redis:7"],
    "batchSize": 10,
    "nodeSelector": {"workload": "compute"},
}


class TaskSpec(WireModel):
    """What a client asks for. Unknown fields are rejected: a typo never silently changes a task."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE_SPEC]})

    images: list[ImageRef] = Field(
        min_length=1, max_length=50, description="Image references to pull (1-50, de-duplicated)."
    )
    batch_size: int = Field(ge=1, le=100, description="Nodes per batch (1-100).")
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        max_length=NODE_SELECTOR_MAX_ENTRIES,
        description=f"Label selector for target nodes (at most {NODE_SELECTOR_MAX_ENTRIES} "
        "entries); empty means all.",
    )
    node_names: list[NodeName] | None = Field(
        default=None,
        max_length=10000,
        description="Explicit node names (optional): at most 10,000, and "
        f"{NODE_NAMES_MAX_TOTAL_CHARS} characters in all.",
    )
    image_pull_policy: ImagePullPolicy = ImagePullPolicy.IF_NOT_PRESENT
    image_pull_secrets: list[SecretName] = Field(default_factory=list, max_length=20)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=50)
    timeout_seconds: int = Field(default=600, ge=30, le=7200, description="Per-node deadline.")
    strategy: Strategy = Strategy.BATCH
    max_failure_ratio: float = Field(default=1.0, ge=0.0, le=1.0)

    @field_validator("images")
    @classmethod
    def _dedupe(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    @field_validator("node_selector")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for k, val in v.items():
            validate_label_key(k)
            validate_label_value(val)
        return v

    @field_validator("node_names")
    @classmethod
    def _dedupe_nodes(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        v = list(dict.fromkeys(v))
        total = sum(len(n) for n in v)
        if total > NODE_NAMES_MAX_TOTAL_CHARS:
            raise ValueError(
                f"{total} characters of node names: at most {NODE_NAMES_MAX_TOTAL_CHARS} in all"
            )
        return v


# --------------------------------------------------------------------------------------
# Progress and results
# --------------------------------------------------------------------------------------


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


class Progress(WireModel):
    total_nodes: int = 0
    completed_nodes: int = 0
    failed_nodes: int = 0
    skipped_nodes: int = 0
    already_warm_nodes: int = 0
    current_batch: int = 0
    total_batches: int = 0
    percentage: float = 0.0

    @staticmethod
    def compute_percentage(total: int, completed: int, failed: int, warm: int) -> float:
        """completed + failed + warm over total, one decimal; an empty task is 0."""
        if total <= 0:
            return 0.0
        return round(100.0 * (completed + failed + warm) / total, 1)


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
    progress: Progress = Field(default_factory=Progress)
    failed_node_details: list[FailedNodeDetail] = Field(default_factory=list)
    skipped_node_details: list[SkippedNodeDetail] = Field(default_factory=list)
    created_at: UtcDatetime
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    message: str | None = None
    schedule_id: str | None = Field(
        default=None, description="The schedule that started this run (IpsScheduleId)."
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
