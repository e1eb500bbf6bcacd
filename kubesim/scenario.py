"""The scenario file: node groups, images, faults, control-plane settings and the timeline.

The node groups and the autoscaler are in scenario_nodes.py (node_objects.py expands the
groups into Node objects), the control plane's timings, admission and timeline in
scenario_control.py, the models' base in scenario_base.py; this module re-exports them all.

Placement (which nodes are NotReady, cordoned, under disk pressure or already hold an image)
comes from one `random.Random(seed)`, so the same scenario and seed always give the same cluster.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from kubesim.scenario_base import ScenarioModel as _Model
from kubesim.scenario_base import parse_bytes
from kubesim.scenario_control import (
    Admission,
    ControlPlane,
    LimitRange,
    Quota,
    TimelineStep,
    Webhook,
)
from kubesim.scenario_nodes import UNINITIALIZED_TAINT, Autoscaler, NodeGroup, Taint, WarmImage

__all__ = [
    "UNINITIALIZED_TAINT",
    "Admission",
    "Autoscaler",
    "ControlPlane",
    "Defaults",
    "Faults",
    "Flaky",
    "Image",
    "LimitRange",
    "LogNormal",
    "NodeGroup",
    "PullError",
    "Quota",
    "Registry",
    "Scenario",
    "Secret",
    "Taint",
    "TimelineStep",
    "WarmImage",
    "Webhook",
    "load_scenario",
    "parse_bytes",
]

PullError = Literal["notFound", "unauthorized", "tooManyRequests", "serverError"]


class LogNormal(_Model):
    median: float = Field(gt=0)
    sigma: float = Field(default=0.5, ge=0)


class Flaky(_Model):
    failures: int = Field(default=1, ge=1, description="The first k pulls on each node fail.")
    error: PullError = "serverError"


class Image(_Model):
    name: str
    size: int = 50 * 1024**2
    not_found: bool = False
    private_secret: str | None = Field(
        default=None, description="Pull secret name that unlocks it."
    )
    rate_limited: bool = False
    shell: bool = True
    flaky: Flaky | None = None
    pull_seconds: float | LogNormal | None = None
    platforms: list[Literal["amd64", "arm64"]] | None = Field(
        default=None, description="Architectures in its manifest list; omitted: every one."
    )
    create_failures: int = Field(
        default=0,
        ge=0,
        description="The first k container creates on each node fail (CreateContainerError).",
    )

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> int:
        return parse_bytes(v)

    @field_validator("flaky", mode="before")
    @classmethod
    def _flaky(cls, v: Any) -> Any:
        return {"failures": v} if isinstance(v, int) else v


class Faults(_Model):
    """Injected API faults; verbs: get list watch create update patch delete deletecollection *."""

    http500: dict[str, float] = {}
    http429: dict[str, float] = {}
    retry_after_seconds: int = Field(default=1, ge=0)
    latency_ms: float = Field(default=0, ge=0)
    watch_disconnect_seconds: float | None = Field(default=None, gt=0)
    expire_next_watch: bool = False

    @field_validator("http500", "http429")
    @classmethod
    def _rates(cls, v: dict[str, float]) -> dict[str, float]:
        verbs = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
        for verb, rate in v.items():
            if verb != "*" and verb not in verbs:
                raise ValueError(f"unknown verb {verb!r}; use one of {sorted(verbs)} or '*'")
            if not 0 <= rate <= 1:
                raise ValueError(f"rate for {verb!r} must be between 0 and 1, got {rate}")
        return v


class Secret(_Model):
    name: str
    namespace: str = "default"
    type: str = "kubernetes.io/dockerconfigjson"


class Defaults(_Model):
    image_size: int = 50 * 1024**2
    pull_overhead_seconds: float = Field(default=0.2, ge=0)
    pull_jitter: float = Field(default=0.2, ge=0, le=1)
    container_run_seconds: float = Field(default=0.5, ge=0)
    kubelet_version: str = "v1.33.2"
    pull_seconds: float | LogNormal | None = Field(
        default=None,
        description="Every image's pull duration unless the image sets its own; omitted: "
        "pullOverheadSeconds + size / node bandwidth.",
    )
    max_images: int = Field(default=50, ge=1, description="The kubelet's nodeStatusMaxImages.")
    node_status_update_seconds: float = Field(
        default=10.0,
        ge=0,
        description="nodeStatusUpdateFrequency: the node status (and its images) tick.",
    )
    image_cache_refresh_seconds: float = Field(
        default=30.0,
        ge=0,
        description="The image GC manager's image list cache refresh period.",
    )
    token_auth_registries: list[str] = Field(
        default=[],
        description="Registry hosts with token auth: a missing repository answers "
        "insufficient_scope, not 404.",
    )

    @field_validator("image_size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> int:
        return parse_bytes(v)


class Registry(_Model):
    """A real registry that kubesim's kubelet pulls from (registrypull.py): every image whose
    reference names this registry's host is resolved against it, instead of `images:`."""

    url: str = Field(description="http(s)://HOST:PORT; its HOST:PORT is matched with images'.")
    ca_file: str | None = Field(default=None, description="PEM CA bundle for an https url.")
    username: str | None = Field(
        default=None, description="Node-level credentials (the kubelet's config.json)."
    )
    password: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        m = re.fullmatch(r"(https?)://([^/\s]+)/?", v)
        if not m:
            raise ValueError(f"not a registry url: {v!r} (use http(s)://HOST[:PORT])")
        return v.rstrip("/")

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]


class Scenario(_Model):
    node_groups: list[NodeGroup] = [NodeGroup(name="default", count=3)]
    images: list[Image] = []
    faults: Faults = Faults()
    secrets: list[Secret] = []
    namespaces: list[str] = []
    defaults: Defaults = Defaults()
    control_plane: ControlPlane = ControlPlane()
    admission: Admission = Admission()
    timeline: list[TimelineStep] = []
    registries: list[Registry] = []
    autoscaler: Autoscaler | None = None

    @model_validator(mode="after")
    def _unique(self) -> Scenario:
        names = [g.name for g in self.node_groups]
        if len(names) != len(set(names)):
            raise ValueError("nodeGroups: group names must be unique")
        if self.autoscaler and self.autoscaler.group and self.autoscaler.group not in names:
            raise ValueError(f"autoscaler.group: no node group {self.autoscaler.group!r}")
        return self

    def image(self, name: str) -> Image:
        """The scenario's entry for `name`, or a plain pullable image of the default size."""
        for img in self.images:
            if img.name == name:
                return img
        return Image(name=name, size=self.defaults.image_size)

    def scaled(self, total: int) -> Scenario:
        """Spread `total` nodes over the groups in the scenario's proportions."""
        base = sum(g.count for g in self.node_groups)
        if base == 0 or total < 0:
            raise ValueError("cannot scale a scenario without nodes")
        raw = [g.count * total / base for g in self.node_groups]
        counts = [int(x) for x in raw]
        order = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
        for i in order[: total - sum(counts)]:
            counts[i] += 1
        groups = [
            g.model_copy(update={"count": c}) for g, c in zip(self.node_groups, counts, strict=True)
        ]
        return self.model_copy(update={"node_groups": groups})


def load_scenario(source: str | Path | dict[str, Any] | Scenario | None) -> Scenario:
    """A scenario from a YAML/JSON path, a dict, or None for the built-in default."""
    if isinstance(source, Scenario):
        return source
    if source is None:
        text = resources.files("kubesim").joinpath("scenarios/default.yaml").read_text()
        return Scenario.model_validate(yaml.safe_load(text))
    if isinstance(source, dict):
        return Scenario.model_validate(source)
    path = Path(source)
    if not path.exists() and "/" not in str(source):
        packaged = resources.files("kubesim").joinpath(f"scenarios/{source}.yaml")
        if packaged.is_file():  # a built-in scenario by name: "slow-pulls"
            return Scenario.model_validate(yaml.safe_load(packaged.read_text()) or {})
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return Scenario.model_validate(data or {})
