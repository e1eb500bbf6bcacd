"""The scenario's control plane: controller timings, the admission plugins that can refuse a
pod, and the timeline of what happens to nodes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubesim.scenario_base import ScenarioModel as _Model


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
        "notReady",
        "unreachable",
        "partitioned",
        "ready",
        "deleteNode",
        "cordon",
        "uncordon",
        "diskPressure",
        "noDiskPressure",
    ]
    node: str
    seconds: float | None = Field(
        default=None,
        gt=0,
        description="notReady/unreachable/partitioned: the node is back after this; "
        "diskPressure: the pressure clears after this.",
    )
