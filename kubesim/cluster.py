"""The simulated control plane and kubelets: scheduler, Job controller, garbage collector, pulls.

Everything runs on one asyncio loop. Time-based behaviour (pull durations, back-offs, deadlines,
TTLs) is expressed in simulated seconds and scheduled with `loop.call_later` or `asyncio.sleep`
divided by the time scale; nothing polls.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from typing import Any

from kubesim import autoscaler, controller_pace, events, gc, kubelet, node_pressure, scheduler
from kubesim import jobs as job_controller
from kubesim import nodes as node_controller
from kubesim.scenario import Faults, Scenario
from kubesim.state import JobState, NodeState, PodState
from kubesim.store import Entry, Store


class Cluster:
    """The store, the clock and the controllers' shared state; the controllers are module functions
    that take it (nodes.py, scheduler.py, kubelet.py, jobs.py, ...). The HTTP layer (server.py)
    only calls into this."""

    def __init__(self, scenario: Scenario, *, seed: int = 0, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.scenario = scenario
        self.seed = seed
        self.time_scale = time_scale
        self.rng = random.Random(seed)
        self.store = Store()
        self.faults: Faults = scenario.faults.model_copy(deep=True)
        self.nodes: dict[str, NodeState] = {}
        self.pods: dict[tuple[str, str], PodState] = {}
        self.jobs: dict[str, JobState] = {}  # by uid
        self.unschedulable: set[tuple[str, str]] = set()
        self.pull_counts: Counter[tuple[str, str]] = Counter()
        self.pull_failures: Counter[tuple[str, str]] = Counter()
        # (node, image) -> cluster.now() when its first pull ended: the image is present
        self.first_pulled: dict[tuple[str, str], float] = {}
        self.max_parallel_pulls: dict[str, int] = {}
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.event_index: dict[tuple[str, str, str, str, str], tuple[str, str]] = {}
        self.event_order: deque[tuple[str, str]] = deque()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.node_index = 0
        self.name_high: dict[str, int] = {}  # node name prefix -> highest index ever used
        self.foreground: dict[str, tuple[str, str]] = {}
        self.owned: dict[str, set[tuple[str, str]]] = {}  # owner uid -> pod keys
        self.pod_ips = 0
        self.registry_clients: dict[str, Any] = {}  # registrypull.py: url -> httpx.AsyncClient
        cp = scenario.control_plane
        self.pace = controller_pace.TokenBucket(cp.controller_qps, cp.controller_burst)
        self.monitor_timers: dict[str, asyncio.TimerHandle] = {}  # node lifecycle grace
        self.evictions: dict[tuple[str, str], asyncio.TimerHandle] = {}  # taint eviction
        self.autoscaling = autoscaler.Autoscaling()  # nodes joining NotReady and leaving

    # -- clock ------------------------------------------------------------------------------
    def now(self) -> float:
        """Simulated seconds since an arbitrary origin."""
        assert self.loop is not None
        return self.loop.time() * self.time_scale

    def later(self, sim_seconds: float, fn: Any, *args: Any) -> asyncio.TimerHandle:
        assert self.loop is not None
        return self.loop.call_later(max(0.0, sim_seconds) / self.time_scale, fn, *args)

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(max(0.0, sim_seconds) / self.time_scale)

    def pod_object(self, ps: PodState) -> dict[str, Any] | None:
        """The stored Pod behind the kubelet's record, if it still exists."""
        e = self.store.get("Pod", *ps.key)
        return e.obj if e else None

    # -- the controllers' entry points ------------------------------------------------------
    def populate(self, nodes: int | None = None) -> None:
        node_controller.populate(self, nodes)
        autoscaler.start(self)

    def add_nodes(self, count: int, group: str | None = None) -> list[str]:
        """Nodes that join later: `count` more nodes shaped like `group` (default: the first)."""
        return node_controller.add_nodes(self, count, group)

    def join_nodes(self, count: int, group: str | None = None, **delays: Any) -> list[str]:
        """Nodes that join like an autoscaler's: NotReady with startup taints, Ready after a
        delay, untainted later (autoscaler.py); `delays` as `autoscaler.join`."""
        return autoscaler.join(self, count, group, **delays)

    def leave_nodes(self, names: list[str] | None = None, count: int | None = None) -> list[str]:
        """Scale down the named nodes, or the `count` oldest joined ones (autoscaler.py)."""
        return autoscaler.leave(self, names, count)

    def node_arch(self, name: str) -> str:
        return node_controller.node_arch(self, name)

    def node_obj(self, name: str) -> dict[str, Any] | None:
        return node_controller.node_obj(self, name)

    def set_node_ready(self, name: str, ready: bool, mode: str = "unreachable") -> None:
        """The kubelet stops (`unreachable`: the node turns Unknown after the grace period;
        `notReady`: it reports Ready=False at once), is cut off from the API server
        (`partitioned`: Unknown after the grace period, but it keeps pulling) or comes back
        (node_lifecycle.py)."""
        return node_controller.set_node_ready(self, name, ready, mode)

    def set_node_cordoned(self, name: str, cordoned: bool) -> None:
        return node_controller.set_node_cordoned(self, name, cordoned)

    def set_node_disk_pressure(self, name: str, pressure: bool) -> None:
        """The kubelet reports DiskPressure True/False, the node lifecycle controller adds or
        removes the `node.kubernetes.io/disk-pressure:NoSchedule` taint (node_pressure.py)."""
        return node_pressure.set_disk_pressure(self, name, pressure)

    def node_patched(self, name: str) -> None:
        """After an API write to a node: keep the kubelet's view in step."""
        return node_controller.node_patched(self, name)

    def delete_node(self, name: str) -> None:
        return node_controller.delete_node(self, name)

    def record_event(
        self,
        obj: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        *,
        component: str,
        host: str | None = None,
        field_path: str | None = None,
    ) -> None:
        return events.record_event(
            self, obj, type_, reason, message, component=component, host=host, field_path=field_path
        )

    def pod_created(self, entry: Entry) -> None:
        """Called after a Pod object is stored (API create or Job controller)."""
        return scheduler.pod_created(self, entry)

    def loop_task(self, ps: PodState, coro: Any) -> None:
        return kubelet.loop_task(self, ps, coro)

    def delete_pod(self, namespace: str, name: str, grace: int | None = None) -> Entry | None:
        """Graceful deletion: mark, let the kubelet stop the containers, then remove."""
        return gc.delete_pod(self, namespace, name, grace)

    def job_created(self, entry: Entry) -> None:
        return job_controller.job_created(self, entry)

    def job_spec_changed(self, uid: str) -> None:
        """After an API write to a Job (e.g. `suspend` flipped back to false)."""
        return job_controller.job_spec_changed(self, uid)

    def delete_job(
        self, namespace: str, name: str, policy: str | None
    ) -> tuple[Entry | None, bool]:
        """Returns (entry, still_present). Default policy for batch/v1 is Orphan."""
        return gc.delete_job(self, namespace, name, policy)

    # -- stats ------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        requests: dict[str, dict[str, dict[str, int]]] = {}
        for (verb, resource, code), n in self.requests.items():
            requests.setdefault(verb, {}).setdefault(resource, {})[str(code)] = n
        pulls: dict[str, dict[str, int]] = {}
        for (node, image), n in self.pull_counts.items():
            pulls.setdefault(node, {})[image] = n
        failures: dict[str, dict[str, int]] = {}
        for (node, image), n in self.pull_failures.items():
            failures.setdefault(node, {})[image] = n
        phases: Counter[str] = Counter(
            e.obj.get("status", {}).get("phase", "") for e in self.store.entries("Pod")
        )
        jobs: Counter[str] = Counter()
        for e in self.store.entries("Job"):
            done = [
                c["type"]
                for c in e.obj.get("status", {}).get("conditions", [])
                if c["type"] in ("Complete", "Failed") and c["status"] == "True"
            ]
            jobs[done[0] if done else "Active"] += 1
        return {
            "resourceVersion": self.store.rv,
            "jobs": dict(jobs),
            "timeScale": self.time_scale,
            "seed": self.seed,
            "requests": requests,
            "requestsTotal": sum(self.requests.values()),
            "objects": {kind: len(table) for kind, table in self.store.objects.items()},
            "podPhases": dict(phases),
            "pulls": pulls,
            "pullsTotal": sum(self.pull_counts.values()),
            "pullFailures": failures,
            "maxParallelPullsPerNode": max(self.max_parallel_pulls.values(), default=0),
            "watchers": sum(len(ws) for ws in self.store.watchers.values()),
            "faults": self.faults.model_dump(by_alias=True),
        }
