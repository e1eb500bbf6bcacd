"""The scenario's nodes: node groups (their shape, taints, warm images, what is NotReady,
cordoned or under disk pressure at the start) and the autoscaler's nodes that join and leave
later."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from kubesim.scenario_base import ScenarioModel as _Model
from kubesim.scenario_base import parse_bytes

# The external cloud provider's taint, removed by the cloud node controller once it initialized
# the node (k8s.io/cloud-provider controllers/node/node_controller.go `syncNode`).
UNINITIALIZED_TAINT = "node.cloudprovider.kubernetes.io/uninitialized"


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
    disk_pressure: int = Field(
        default=0,
        ge=0,
        description="Ready, uncordoned nodes under DiskPressure at the start (condition True, "
        "node.kubernetes.io/disk-pressure:NoSchedule taint).",
    )
    disk_pressure_fraction: float = Field(default=0.0, ge=0, le=1)
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
