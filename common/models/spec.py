"""The task spec: the POST body of /api/v1/tasks, its limits and its tolerations."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .follow import FollowSpec
from .validators import (
    ImageRef,
    NodeName,
    SecretName,
    validate_label_key,
    validate_label_value,
)
from .wire import WireModel

NODE_SELECTOR_MAX_ENTRIES = 32
# nodeNames in all: the task's result echoes them and names each missing one in a failure
# detail, and a Temporal payload may not exceed 2 MB (a 10,000 x 96-character list made a 3 MB
# result the workflow could never complete).
NODE_NAMES_MAX_TOTAL_CHARS = 320_000
TOLERATION_SECONDS_MAX = 86400


class Strategy(StrEnum):
    BATCH = "batch"
    ROLLING = "rolling"


class Pacing(StrEnum):
    """How many Jobs a task keeps in flight (issue 16; docs/engine.md, "When AIMD helps")."""

    ADAPTIVE = "adaptive"  # an AIMD window: a registry's 429 halves it, successes grow it back
    FIXED = "fixed"  # always batchSize: a 429 makes that pod retry, never shrinks the window


class ImagePullPolicy(StrEnum):
    IF_NOT_PRESENT = "IfNotPresent"
    ALWAYS = "Always"


class TolerationOperator(StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


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
    pin_digests: bool = Field(
        default=True,
        description="Pull `name@sha256:...`, the digest the registry resolved before any Job, "
        "so every node gets the same bits; false pulls the references as given.",
    )
    pacing: Pacing = Field(
        default=Pacing.ADAPTIVE,
        description="`adaptive`: a registry's 429 halves the Jobs in flight and successes grow "
        "them back to batchSize; `fixed`: always batchSize in flight (the 429'd pods retry as "
        "the kubelet does), for registries that throttle by rate rather than punish 429s.",
    )
    follow: FollowSpec | None = Field(
        default=None,
        description="After the first sweep, keep prewarming nodes that join or become "
        "eligible: `{durationSeconds}` or `{}` (until cancelled). Not with nodeNames.",
    )

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

    @field_validator("follow")
    @classmethod
    def _follow_needs_a_selector(
        cls, v: FollowSpec | None, info: ValidationInfo
    ) -> FollowSpec | None:
        if v is not None and info.data.get("node_names") is not None:
            raise ValueError(
                "follow cannot be combined with nodeNames: a fixed list of nodes has nothing "
                "to follow (use nodeSelector)"
            )
        return v
