"""The controllers' records of each node, pod, container and Job (objects live in the store)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kubesim import images as img

# generateName's random suffix, as the API server makes it (apimachinery `util/rand.String`: no
# vowels and no look-alike characters, so a suffix never spells a word; `storage/names`: 5 of them).
# The Job controller names its pods the same way.
GENERATED_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
GENERATED_NAME_LENGTH = 5
# The kubelet's one back-off for image pulls and for crashed-container restarts:
# pkg/kubelet/kubelet.go `backOffPeriod` (10 s, doubling) and `MaxContainerBackOff` (300 s).
KUBELET_BACKOFF_INITIAL = 10.0
KUBELET_BACKOFF_MAX = 300.0


@dataclass(eq=False)
class NodeState:
    name: str
    group: str
    bandwidth: int
    ready: asyncio.Event
    images: dict[str, int] = field(default_factory=dict)  # normalized ref -> size, in pull order
    digests: dict[str, str] = field(default_factory=dict)  # normalized ref -> a registry's digest
    pull_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pods: set[tuple[str, str]] = field(default_factory=set)
    flaky_failures: Counter[str] = field(default_factory=Counter)
    pulling: int = 0
    status_pending: bool = False
    down: asyncio.Event = field(default_factory=asyncio.Event)
    # Cleared while a network partition cuts the kubelet off the API server: it keeps working
    # but writes nothing (statuses, events, node status) until the partition heals.
    reachable: asyncio.Event = field(default_factory=asyncio.Event)
    # The eviction manager's verdict (node_pressure.py): the kubelet reports DiskPressure=True.
    disk_pressure: bool = False


@dataclass(eq=False)
class ContainerState:
    name: str
    image: str
    init: bool
    policy: str
    command: list[str]
    mounts: list[str]
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str | None = None
    exit_code: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    restarts: int = 0
    last_state: dict[str, Any] | None = None
    container_id: str | None = None
    backoff: float = 0.0
    backoff_until: float = 0.0
    pulled: bool = False
    last_error: str | None = None
    backoff_reported: bool = False
    image_digest: str | None = None  # the digest a real registry resolved it to

    @property
    def done(self) -> bool:
        return self.state == "terminated" and self.exit_code == 0

    def status(self, restart_policy: str) -> dict[str, Any]:
        st: dict[str, Any]
        if self.state == "waiting":
            st = {"waiting": {"reason": self.reason}}
            if self.message:
                st["waiting"]["message"] = self.message
        elif self.state == "running":
            st = {"running": {"startedAt": self.started_at}}
        else:
            st = {
                "terminated": {
                    "exitCode": self.exit_code,
                    "reason": self.reason,
                    "startedAt": self.started_at,
                    "finishedAt": self.finished_at,
                }
            }
            if self.container_id:
                st["terminated"]["containerID"] = self.container_id
            if self.message:
                st["terminated"]["message"] = self.message
        out: dict[str, Any] = {
            "name": self.name,
            "state": st,
            "lastState": self.last_state or {},
            "ready": self.state == "running",
            "restartCount": self.restarts,
            "image": self.image if not self.pulled else img.normalize(self.image),
            "imageID": img.image_id(self.image, self.image_digest) if self.pulled else "",
            "started": self.state == "running",
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out


@dataclass(eq=False)
class PodState:
    key: tuple[str, str]
    uid: str
    node: str | None = None
    containers: list[ContainerState] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    terminating: bool = False
    job_uid: str | None = None
    final_phase: str | None = None  # set by the kubelet's TerminatePod (termination.py)
    dirty: bool = False  # a status the kubelet could not write (partition)
    term_task: asyncio.Task[None] | None = None


@dataclass(eq=False)
class JobState:
    key: tuple[str, str]
    uid: str
    failed: int = 0
    succeeded: int = 0
    active: set[tuple[str, str]] = field(default_factory=set)
    finished: bool = False
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    next_pod_at: float = 0.0
    sync_pending: bool = False
    terminating: set[tuple[str, str]] = field(default_factory=set)
    final: tuple[bool, str, str] | None = None  # the terminal condition still to add
    create_backoff: float = 0.0  # after a refused pod create: 1 s doubling to 60 s
    token_ready: bool = False  # the rate limiter's tokens for the next creates are reserved


def generated_suffix(rng: random.Random) -> str:
    """A generateName suffix (GENERATED_NAME_CHARS)."""
    return "".join(rng.choice(GENERATED_NAME_CHARS) for _ in range(GENERATED_NAME_LENGTH))


def container_field_path(c: ContainerState) -> str:
    """The container's path in the pod spec, as Events name it (`involvedObject.fieldPath`)."""
    return f"spec.{'initContainers' if c.init else 'containers'}{{{c.name}}}"
