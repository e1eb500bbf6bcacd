"""The scenario file: node groups, images, faults, control-plane settings and the timeline.

node_objects.py expands its node groups into Node objects.

Placement (which nodes are NotReady, cordoned or already hold an image) comes from one
`random.Random(seed)`, so the same scenario and seed always give the same cluster.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

# The external cloud provider's taint, removed by the cloud node controller once it initialized
# the node (k8s.io/cloud-provider controllers/node/node_controller.go `syncNode`).
UNINITIALIZED_TAINT = "node.cloudprovider.kubernetes.io/uninitialized"

PullError = Literal["notFound", "unauthorized", "tooManyRequests", "serverError"]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
}


def parse_bytes(value: Any) -> int:
    """`52428800`, `50MiB`, `100MB/s`, `5Gi` -> bytes (or bytes per second)."""
    if isinstance(value, int | float):
        return int(value)
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*(/s)?\s*", str(value))
    if not m or m[2].lower() not in _UNITS:
        raise ValueError(f"not a size: {value!r} (use e.g. 52428800, 50MiB, 1GB, 100MB/s)")
    return int(float(m[1]) * _UNITS[m[2].lower()])


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=False
    )


class Taint(_Model):
    key: str
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class WarmImage(_Model):
    name: str
    count: int | None = Field(
        default=None, ge=0, description="Nodes that hold it; omitted: every node."
    )
    fraction: float | None = Field(default=None, ge=0, le=1)


class NodeGroup(_Model):
    name: str
    count: int = Field(ge=0)
    name_prefix: str | None = None
    labels: dict[str, str] = {}
    zones: list[str] = ["zone-a"]
    region: str = "region-1"
    arch: Literal["amd64", "arm64"] = "amd64"
    os: Literal["linux", "windows"] = "linux"
    taints: list[Taint] = []
    not_ready: int = Field(default=0, ge=0)
    not_ready_fraction: float = Field(default=0.0, ge=0, le=1)
    cordoned: int = Field(default=0, ge=0)
    cordoned_fraction: float = Field(default=0.0, ge=0, le=1)
    images: list[WarmImage] = []
    pull_bandwidth: int = 100 * 1000**2
    capacity: dict[str, str] = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    instance_type: str = "kubesim.large"

    @field_validator("pull_bandwidth", mode="before")
    @classmethod
    def _bw(cls, v: Any) -> int:
        return parse_bytes(v)

    @field_validator("zones")
    @classmethod
    def _zones(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("zones must name at least one zone")
        return v


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


class ControlPlane(_Model):
    """Timings of the control plane's controllers, in simulated seconds (tests shorten them)."""

    pod_kill_seconds: float = Field(
        default=1.0, ge=0, description="Kubelet: stopping a running pod's containers."
    )
    pod_gc_quarantine_seconds: float = Field(
        default=40.0, ge=0, description="Pod GC: how long a missing node is quarantined."
    )
    node_monitor_grace_period_seconds: float = Field(
        default=40.0, ge=0, description="Node lifecycle: silence before Ready turns Unknown."
    )
    default_toleration_seconds: int = Field(
        default=300, ge=0, description="DefaultTolerationSeconds admission."
    )
    controller_qps: float = Field(
        default=20.0, ge=0, description="kube-controller-manager --kube-api-qps (0: unlimited)."
    )
    controller_burst: int = Field(default=30, ge=1, description="--kube-api-burst.")
    apf_plain_text_429: bool = Field(
        default=True, description="429 answers as API Priority and Fairness: plain text."
    )


class Webhook(_Model):
    """A validating admission webhook that denies pods whose image starts with a prefix."""

    name: str = "registry-allowlist.kubesim.io"
    denied_image_prefixes: list[str] = []
    message: str = "image {image} is not from an allowed registry"


class Quota(_Model):
    name: str = "compute-quota"
    namespace: str = "default"
    pods: int = Field(ge=0)


class LimitRange(_Model):
    name: str = "limits"
    namespace: str = "default"
    max_cpu: str = Field(description="max cpu limit per Container, e.g. '2'")


class Admission(_Model):
    """Admission plugins that can refuse a pod (the Job then carries FailedCreate Events)."""

    priority_classes: list[str] | None = Field(
        default=None,
        description="PriorityClasses that exist besides system-*; null: every name exists.",
    )
    priority_node_groups: list[str] | None = Field(
        default=None,
        description="Check priorityClassName only for pods pinned to these groups' nodes.",
    )
    quotas: list[Quota] = []
    limit_ranges: list[LimitRange] = []
    pod_security_enforce: dict[str, Literal["privileged", "baseline", "restricted"]] = Field(
        default={}, description="namespace -> pod-security.kubernetes.io/enforce level"
    )
    webhooks: list[Webhook] = []


class TimelineStep(_Model):
    """Something that happens to a node `at` simulated seconds after kubesim starts."""

    at: float = Field(ge=0)
    action: Literal[
        "notReady", "unreachable", "partitioned", "ready", "deleteNode", "cordon", "uncordon"
    ]
    node: str
    seconds: float | None = Field(
        default=None, gt=0, description="notReady/unreachable: the node is back after this."
    )


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


class Autoscaler(_Model):
    """Nodes that join NotReady with startup taints and leave, like an autoscaler's
    (autoscaler.py). Simulated seconds; the runtime join endpoint takes the same delays."""

    group: str | None = Field(default=None, description="Joined nodes' shape; omitted: the first.")
    join_every_seconds: float | None = Field(
        default=None, gt=0, description="A scale-up every N s; omitted: no scheduled joins."
    )
    join_count: int = Field(default=1, ge=1, description="Nodes per scale-up.")
    arrivals: Literal["regular", "poisson"] = "regular"
    start_seconds: float = Field(default=0, ge=0, description="The first scale-up.")
    stop_seconds: float | None = Field(default=None, ge=0, description="No scale-up after it.")
    max_joins: int | None = Field(default=None, ge=0, description="Scheduled joins in all.")
    ready_after_seconds: float = Field(
        default=30, ge=0, description="Registered (NotReady) -> the kubelet reports Ready."
    )
    ready_jitter: float = Field(default=0.2, ge=0, le=1)
    startup_taints: list[Taint] = Field(
        default=[Taint(key=UNINITIALIZED_TAINT, value="true", effect="NoSchedule")],
        description="Besides node.kubernetes.io/not-ready, removed taintsRemovedAfterSeconds "
        "after Ready.",
    )
    taints_removed_after_seconds: float = Field(default=10, ge=0)
    lifetime_seconds: float | None = Field(
        default=None, gt=0, description="A joined node leaves this long after it joined."
    )
    lifetime_jitter: float = Field(default=0.2, ge=0, le=1)
    drain_seconds: float = Field(
        default=0, ge=0, description="Scale-down: ToBeDeletedByClusterAutoscaler this long first."
    )


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
