"""The simulated control plane and kubelets: scheduler, Job controller, garbage collector, pulls.

Everything runs on one asyncio loop. Time-based behaviour (pull durations, back-offs, deadlines,
TTLs) is expressed in simulated seconds and scheduled with `loop.call_later` or `asyncio.sleep`
divided by the time scale; nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import random
import secrets
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from kubesim import (
    admission,
    controller_pace,
    create_errors,
    job_conditions,
    node_lifecycle,
    podgc,
    termination,
    timeline,
)
from kubesim import images as img
from kubesim.scenario import Faults, Image, Scenario, build_nodes
from kubesim.store import Entry, Store, now_iso

POD_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
IMAGE_BACKOFF_INITIAL = 10.0
IMAGE_BACKOFF_MAX = 300.0
JOB_BACKOFF_INITIAL = 10.0
JOB_BACKOFF_MAX = 360.0
MAX_EVENTS = 100000  # oldest Events go first beyond this (a real cluster keeps them for 1 h)
EPOCH = "1970-01-01T00:00:00Z"


@dataclass(eq=False)
class NodeState:
    name: str
    group: str
    bandwidth: int
    ready: asyncio.Event
    images: dict[str, int] = field(default_factory=dict)  # normalized ref -> size, in pull order
    pull_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pods: set[tuple[str, str]] = field(default_factory=set)
    flaky_failures: Counter[str] = field(default_factory=Counter)
    pulling: int = 0
    status_pending: bool = False
    down: asyncio.Event = field(default_factory=asyncio.Event)
    # Cleared while a network partition cuts the kubelet off the API server: it keeps working
    # but writes nothing (statuses, events, node status) until the partition heals.
    reachable: asyncio.Event = field(default_factory=asyncio.Event)


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
            "imageID": img.image_id(self.image) if self.pulled else "",
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


class Cluster:
    """State and controllers; the HTTP layer (server.py) only calls into this."""

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
        self.max_parallel_pulls: dict[str, int] = {}
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.event_index: dict[tuple[str, str, str, str, str], tuple[str, str]] = {}
        self.event_order: deque[tuple[str, str]] = deque()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.node_index = 0
        self.foreground: dict[str, tuple[str, str]] = {}
        self.owned: dict[str, set[tuple[str, str]]] = {}  # owner uid -> pod keys
        self.pod_ips = 0
        cp = scenario.control_plane
        self.pace = controller_pace.TokenBucket(cp.controller_qps, cp.controller_burst)
        self.monitor_timers: dict[str, asyncio.TimerHandle] = {}  # node lifecycle grace
        self.evictions: dict[tuple[str, str], asyncio.TimerHandle] = {}  # taint eviction

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

    # -- bootstrap --------------------------------------------------------------------------
    def populate(self, nodes: int | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        scenario = self.scenario if nodes is None else self.scenario.scaled(nodes)
        created = now_iso()
        for ns in dict.fromkeys(["default", "kube-system", *scenario.namespaces]):
            self.store.create(
                "Namespace",
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
            )
        for s in scenario.secrets:
            self.store.create(
                "Secret",
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": s.name, "namespace": s.namespace},
                    "type": s.type,
                    "data": {".dockerconfigjson": "eyJhdXRocyI6e319"},
                },
            )
        for node in build_nodes(scenario, self.seed, created):
            self._add_node_object(node)
        self.store.listen("Pod", self._on_pod_event)
        timeline.start(self)

    def _add_node_object(self, node: dict[str, Any]) -> None:
        meta = node.pop("_kubesim")
        self.node_index += 1
        ready = asyncio.Event()
        ns = NodeState(node["metadata"]["name"], meta["group"], meta["bandwidth"], ready)
        ns.reachable.set()
        if node["status"]["conditions"][-1]["status"] == "True":
            ready.set()
        else:
            ns.down.set()
        for ref in meta["warm"]:
            ns.images[img.normalize(ref)] = self.scenario.image(ref).size
        node["status"]["images"] = self._status_images(ns)
        self.nodes[ns.name] = ns
        self.store.create("Node", node)

    def add_nodes(self, count: int, group: str | None = None) -> list[str]:
        """Nodes that join later: `count` more nodes shaped like `group` (default: the first)."""
        groups = {g.name: g for g in self.scenario.node_groups}
        base = groups[group] if group else self.scenario.node_groups[0]
        prefix = base.name_prefix or base.name
        existing = {n for n in self.nodes if n.startswith(prefix + "-")}
        start = 1 + max(
            (int(n.rsplit("-", 1)[1]) for n in existing if n.rsplit("-", 1)[1].isdigit()),
            default=0,
        )
        g = base.model_copy(
            update={
                "count": count,
                "not_ready": 0,
                "cordoned": 0,
                "not_ready_fraction": 0.0,
                "cordoned_fraction": 0.0,
                "images": [],
            }
        )
        sc = self.scenario.model_copy(update={"node_groups": [g]})
        names = []
        for node in build_nodes(sc, self.seed + self.node_index, now_iso()):
            old = node["metadata"]["name"]
            idx = int(old.rsplit("-", 1)[1]) - 1 + start
            name = f"{prefix}-{idx}"
            node["metadata"]["name"] = name
            node["metadata"]["labels"]["kubernetes.io/hostname"] = name
            node["status"]["addresses"][1]["address"] = name
            node["spec"]["providerID"] = f"kubesim://{name}"
            self._add_node_object(node)
            names.append(name)
        self._retry_unschedulable()
        return names

    # -- nodes ------------------------------------------------------------------------------
    def _status_images(self, ns: NodeState) -> list[dict[str, Any]]:
        """The kubelet's view: biggest first, capped at nodeStatusMaxImages."""
        ordered = sorted(ns.images.items(), key=lambda kv: kv[1], reverse=True)
        return [
            {"names": img.image_names(ref), "sizeBytes": size}
            for ref, size in ordered[: self.scenario.defaults.max_images]
        ]

    def _node_status_soon(self, ns: NodeState) -> None:
        """The kubelet reports images in its periodic node status update, not per pull."""
        if ns.status_pending:
            return
        ns.status_pending = True
        d = self.scenario.defaults
        # The image GC manager refreshes its image list every imageCacheRefreshSeconds; the
        # next node status update after that carries it (per-node phases, as on real nodes).
        phase = (sum(ns.name.encode()) % 997) / 997
        now = self.now()
        ready_at = now
        if d.image_cache_refresh_seconds > 0:
            p = d.image_cache_refresh_seconds
            off = phase * p
            ready_at = now + (p - (now - off) % p)
        if d.node_status_update_seconds > 0:
            p = d.node_status_update_seconds
            off = phase * p
            ready_at += p - (ready_at - off) % p
        self.later(ready_at - now, self._node_status_flush, ns)

    def _node_status_flush(self, ns: NodeState) -> None:
        ns.status_pending = False
        if not ns.reachable.is_set():
            ns.status_pending = True  # flushed when the partition heals
            return
        node = self.node_obj(ns.name)
        if node is not None and self.nodes.get(ns.name) is ns:
            new_images = self._status_images(ns)
            if new_images != node["status"].get("images"):
                node["status"]["images"] = new_images
                self.store.update("Node", node)

    def node_arch(self, name: str) -> str:
        node = self.node_obj(name)
        labels = (node or {}).get("metadata", {}).get("labels") or {}
        return str(labels.get("kubernetes.io/arch", "amd64"))

    def node_obj(self, name: str) -> dict[str, Any] | None:
        e = self.store.get("Node", None, name)
        return e.obj if e else None

    def set_node_ready(self, name: str, ready: bool, mode: str = "unreachable") -> None:
        """The kubelet stops (`unreachable`: the node turns Unknown after the grace period;
        `notReady`: it reports Ready=False at once), is cut off from the API server
        (`partitioned`: Unknown after the grace period, but it keeps pulling) or comes back
        (node_lifecycle.py)."""
        if self.node_obj(name) is None or name not in self.nodes:
            raise KeyError(name)
        if ready:
            node_lifecycle.kubelet_up(self, name)
            self._retry_unschedulable()
        else:
            node_lifecycle.kubelet_down(self, name, mode)

    def set_node_cordoned(self, name: str, cordoned: bool) -> None:
        node = self.node_obj(name)
        if node is None:
            raise KeyError(name)
        taints = [
            t
            for t in node["spec"].get("taints", [])
            if t["key"] != "node.kubernetes.io/unschedulable"
        ]
        if cordoned:
            node["spec"]["unschedulable"] = True
            taints.append(
                {
                    "key": "node.kubernetes.io/unschedulable",
                    "effect": "NoSchedule",
                    "timeAdded": now_iso(),
                }
            )
        else:
            node["spec"].pop("unschedulable", None)
        self._set_taints(node, taints)
        self.store.update("Node", node)
        if not cordoned:
            self._retry_unschedulable()

    @staticmethod
    def _set_taints(node: dict[str, Any], taints: list[dict[str, Any]]) -> None:
        if taints:
            node["spec"]["taints"] = taints
        else:
            node["spec"].pop("taints", None)

    def node_patched(self, name: str) -> None:
        """After an API write to a node: keep the kubelet's view in step."""
        node = self.node_obj(name)
        if node is not None:
            self._retry_unschedulable()

    def delete_node(self, name: str) -> None:
        if self.store.delete("Node", None, name) is None:
            raise KeyError(name)
        ns = self.nodes.pop(name)
        ns.ready.clear()
        ns.down.set()
        node_lifecycle.forget(self, name)
        podgc.node_deleted(self, ns)

    # -- events -----------------------------------------------------------------------------
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
        if component == "kubelet" and host and not self._reachable(host):
            return  # a partitioned kubelet's events never reach the API server
        md = obj["metadata"]
        ns = md.get("namespace") or "default"
        key = (md["uid"], field_path or "", reason, message, type_)
        ts = now_iso()
        existing = self.event_index.get(key)
        if existing is not None:
            e = self.store.get("Event", *existing)
            if e is not None:
                e.obj["count"] += 1
                e.obj["lastTimestamp"] = ts
                self.store.update("Event", e.obj)
                return
        involved: dict[str, Any] = {
            "kind": obj.get("kind"),
            "namespace": md.get("namespace"),
            "name": md["name"],
            "uid": md["uid"],
            "apiVersion": obj.get("apiVersion"),
            "resourceVersion": md.get("resourceVersion"),
        }
        if field_path:
            involved["fieldPath"] = field_path
        name = f"{md['name']}.{secrets.token_hex(8)}"
        source: dict[str, Any] = {"component": component}
        if host:
            source["host"] = host
        ev = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {k: v for k, v in involved.items() if v is not None},
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
            "type": type_,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host or "",
        }
        self.store.create("Event", ev)
        self.event_index[key] = (ns, name)
        self.event_order.append((ns, name))
        while len(self.event_order) > MAX_EVENTS:
            old = self.event_order.popleft()
            self.store.delete("Event", *old)
        if len(self.event_index) > 2 * MAX_EVENTS:
            self.event_index = {
                k: v for k, v in self.event_index.items() if self.store.get("Event", *v)
            }

    # -- pods: creation, scheduling ---------------------------------------------------------
    def pod_created(self, entry: Entry) -> None:
        """Called after a Pod object is stored (API create or Job controller)."""
        pod = entry.obj
        md = pod["metadata"]
        key = (md["namespace"], md["name"])
        spec = pod["spec"]
        containers = [
            ContainerState(
                c["name"],
                c["image"],
                init,
                c.get("imagePullPolicy", "IfNotPresent"),
                list(c.get("command") or []),
                [m.get("mountPath", "") for m in c.get("volumeMounts") or []],
                reason="PodInitializing"
                if (spec.get("initContainers") and not init)
                else ("PodInitializing" if init else "ContainerCreating"),
            )
            for init, lst in ((True, spec.get("initContainers") or []), (False, spec["containers"]))
            for c in lst
        ]
        owner = next((o for o in md.get("ownerReferences", []) if o.get("kind") == "Job"), None)
        ps = PodState(
            key, md["uid"], containers=containers, job_uid=owner["uid"] if owner else None
        )
        self.pods[key] = ps
        for o in md.get("ownerReferences", []):
            self.owned.setdefault(o.get("uid", ""), set()).add(key)
        if pod.get("status", {}).get("phase") != "Pending":
            pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
            self.store.update("Pod", pod)
        self._schedule(ps)

    def _pod(self, ps: PodState) -> dict[str, Any] | None:
        e = self.store.get("Pod", *ps.key)
        return e.obj if e else None

    def _schedule(self, ps: PodState) -> None:
        pod = self._pod(ps)
        if pod is None or ps.terminating:
            return
        spec = pod["spec"]
        if spec.get("nodeName"):
            self._bind(ps, pod, spec["nodeName"], event=False)
            return
        sel = spec.get("nodeSelector") or {}
        host = sel.get("kubernetes.io/hostname") or pinned_node(spec)
        candidates = [host] if host is not None else list(self.nodes)
        reasons: Counter[str] = Counter()
        if host is not None:
            reasons["node(s) didn't match Pod's node affinity/selector"] += len(self.nodes) - (
                1 if host in self.nodes else 0
            )
        fits: list[str] = []
        for name in candidates:
            if name not in self.nodes:
                continue
            e = self.store.get("Node", None, name)
            assert e is not None
            why = filter_node(spec, e.obj)
            if why is None:
                fits.append(name)
            else:
                reasons[why] += 1
        if fits:
            best = min(fits, key=lambda n: (len(self.nodes[n].pods), self.rng.random()))
            self.unschedulable.discard(ps.key)
            self._bind(ps, pod, best, event=True)
            return
        total = len(self.nodes)
        detail = ", ".join(sorted(f"{n} {r}" for r, n in reasons.items()))
        message = (
            f"0/{total} nodes are available: {detail}. preemption: 0/{total} nodes are available: "
            f"{total} Preemption is not helpful for scheduling."
        )
        first = ps.key not in self.unschedulable
        self.unschedulable.add(ps.key)
        cond = {
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": None,
            "lastTransitionTime": now_iso(),
            "reason": "Unschedulable",
            "message": message,
        }
        old = pod["status"].get("conditions")
        if old != [cond] and (first or (old and old[0].get("message") != message)):
            pod["status"]["conditions"] = [cond]
            self.store.update("Pod", pod)
            self.record_event(
                pod, "Warning", "FailedScheduling", message, component="default-scheduler"
            )

    def _retry_unschedulable(self) -> None:
        for key in list(self.unschedulable):
            ps = self.pods.get(key)
            if ps is None:
                self.unschedulable.discard(key)
            else:
                self._schedule(ps)

    def _bind(self, ps: PodState, pod: dict[str, Any], node: str, *, event: bool) -> None:
        ps.node = node
        pod["spec"]["nodeName"] = node
        ts = now_iso()
        pod["status"]["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": ts,
            }
        ]
        self.store.update("Pod", pod)
        if event:
            self.record_event(
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {ps.key[0]}/{ps.key[1]} to {node}",
                component="default-scheduler",
            )
        ns = self.nodes.get(node)
        if ns is None:
            return  # bound to a node that does not exist: stays Pending, as on a real cluster
        ns.pods.add(ps.key)
        ps.task = asyncio.get_running_loop().create_task(self._kubelet(ps, ns))
        node_lifecycle.pod_on_node(self, ps)

    # -- kubelet ----------------------------------------------------------------------------
    def _reachable(self, node: str) -> bool:
        ns = self.nodes.get(node)
        return ns is None or ns.reachable.is_set()

    def _publish(self, ps: PodState) -> dict[str, Any] | None:
        """Rebuild the pod's status from the kubelet's state and store it."""
        pod = self._pod(ps)
        if pod is None:
            return None
        if not self._reachable(ps.node or ""):
            ps.dirty = True  # the status manager retries once the API server is reachable
            return pod
        ps.dirty = False
        spec = pod["spec"]
        rp = spec.get("restartPolicy", "Always")
        st = pod["status"]
        inits = [c for c in ps.containers if c.init]
        mains = [c for c in ps.containers if not c.init]
        inits_done = all(c.done for c in inits)
        init_failed = (
            any(c.state == "terminated" and c.exit_code != 0 for c in inits) and rp == "Never"
        )
        if ps.final_phase is not None and st.get("phase") not in ("Succeeded", "Failed"):
            phase = ps.final_phase
        elif init_failed:
            phase = "Failed"
        elif not inits_done or any(c.state == "waiting" and c.restarts == 0 for c in mains):
            phase = "Pending"
        elif all(c.state == "terminated" for c in mains):
            if all(c.exit_code == 0 for c in mains):
                phase = "Succeeded"
            else:
                phase = "Failed" if rp == "Never" else "Running"
        else:
            phase = "Running"
        ts = now_iso()
        old = {c["type"]: c for c in st.get("conditions", [])}

        def cond(type_: str, ok: bool, reason: str | None = None) -> dict[str, Any]:
            status = "True" if ok else "False"
            prev = old.get(type_)
            c: dict[str, Any] = {
                "type": type_,
                "status": status,
                "lastProbeTime": None,
                "lastTransitionTime": prev["lastTransitionTime"]
                if prev and prev["status"] == status
                else ts,
            }
            if reason and not ok:
                c["reason"] = reason
            return c

        terminal = phase in ("Succeeded", "Failed")
        all_running = all(c.state == "running" for c in mains)
        not_ready_reason = {"Succeeded": "PodCompleted", "Failed": "PodFailed"}.get(
            phase, "ContainersNotReady"
        )
        st["phase"] = phase
        st["conditions"] = [
            cond("PodReadyToStartContainers", not terminal or phase == "Succeeded"),
            cond(
                "Initialized",
                inits_done,
                not_ready_reason if terminal else "ContainersNotInitialized",
            ),
            cond("Ready", all_running and not terminal, not_ready_reason),
            cond("ContainersReady", all_running and not terminal, not_ready_reason),
            cond("PodScheduled", True),
            *(c for c in old.values() if c["type"] == "DisruptionTarget"),
        ]
        if not (all_running and not terminal):
            waiting = [c.name for c in mains if c.state != "running"]
            if not terminal and waiting:
                msg = f"containers with unready status: [{' '.join(waiting)}]"
                st["conditions"][2]["message"] = msg
                st["conditions"][3]["message"] = msg
        if not inits_done and not terminal:
            pending = [c.name for c in inits if not c.done]
            st["conditions"][1]["message"] = (
                f"containers with incomplete status: [{' '.join(pending)}]"
            )
        node_obj = self.node_obj(ps.node or "")
        if node_obj is not None:
            ip = node_obj["status"]["addresses"][0]["address"]
            st["hostIP"] = ip
            st["hostIPs"] = [{"ip": ip}]
            if "podIP" not in st:
                self.pod_ips += 1
                n = self.pod_ips
                pod_ip = f"10.{128 + (n >> 16) % 128}.{(n >> 8) & 255}.{n & 255}"
                st["podIP"] = pod_ip
                st["podIPs"] = [{"ip": pod_ip}]
        st.setdefault("startTime", ts)
        if inits:
            st["initContainerStatuses"] = [c.status(rp) for c in inits]
        st["containerStatuses"] = [c.status(rp) for c in mains]
        self.store.update("Pod", pod)
        return pod

    async def _kubelet(self, ps: PodState, ns: NodeState) -> None:
        """One pod's life on its node: init containers in order, then the containers."""
        try:
            await ns.reachable.wait()  # a partitioned kubelet does not see new pods
            await ns.ready.wait()
            pod = self._publish(ps)
            if pod is None:
                return
            rp = pod["spec"].get("restartPolicy", "Always")
            await self._pull_secrets_check(ps, pod)
            for c in (c for c in ps.containers if c.init):
                while not c.done:
                    if not await self._ensure_image(ps, ns, c, pod):
                        await self._wait_backoff(ps, [c], pod)
                        continue
                    await self._run_container(ps, ns, c, pod, rp, init=True)
                    if c.state == "terminated" and c.exit_code != 0:
                        if rp == "Never":
                            self._publish(ps)
                            return
                        await self._crash_backoff(ps, c)
                for c in ps.containers:
                    if not c.init and c.reason == "PodInitializing":
                        c.reason = "ContainerCreating"
                self._publish(ps)
            pending = [c for c in ps.containers if not c.init]
            while pending:
                for c in list(pending):
                    await ns.ready.wait()
                    if c.backoff_until > self.now():
                        continue
                    if await self._ensure_image(ps, ns, c, pod):
                        pending.remove(c)
                        self.loop_task(ps, self._container_life(ps, ns, c, pod, rp))
                if pending:
                    await self._wait_backoff(ps, pending, pod)
        except asyncio.CancelledError:
            pass

    def loop_task(self, ps: PodState, coro: Any) -> None:
        assert self.loop is not None
        t = self.loop.create_task(coro)
        ps.tasks.add(t)
        t.add_done_callback(ps.tasks.discard)

    async def _pull_secrets_check(self, ps: PodState, pod: dict[str, Any]) -> None:
        missing = [
            s.get("name")
            for s in pod["spec"].get("imagePullSecrets") or []
            if self.store.get("Secret", ps.key[0], s.get("name", "")) is None
        ]
        if missing:
            self.record_event(
                pod,
                "Warning",
                "FailedToRetrieveImagePullSecret",
                f"Unable to retrieve some image pull secrets ({', '.join(missing)}); attempting "
                "to pull the image may not succeed.",
                component="kubelet",
                host=ps.node,
            )

    async def _wait_backoff(
        self, ps: PodState, waiting: list[ContainerState], pod: dict[str, Any]
    ) -> None:
        """Sleep until the next sync: soon after a failure (to show ImagePullBackOff), else
        until the earliest back-off expires."""
        now = self.now()
        changed = False
        for c in waiting:
            if c.reason == "ErrImagePull" and c.backoff_until > now and not c.backoff_reported:
                c.backoff_reported = True
        wake = min(c.backoff_until for c in waiting)
        if math.isinf(wake):
            await asyncio.Event().wait()  # ErrImageNeverPull: nothing will change
        fresh = [c for c in waiting if c.reason == "ErrImagePull"]
        if fresh:
            await self.sleep(min(1.0, max(0.0, wake - now)))
            for c in fresh:
                if c.backoff_until > self.now() and ps.key in self.pods:
                    c.reason = "ImagePullBackOff"
                    c.message = img.backoff_message(
                        c.image, c.last_error, self.scenario.defaults.kubelet_version
                    )
                    self.record_event(
                        pod,
                        "Normal",
                        "BackOff",
                        f'Back-off pulling image "{c.image}"',
                        component="kubelet",
                        host=ps.node,
                        field_path=self._fp(c),
                    )
                    self.record_event(
                        pod,
                        "Warning",
                        "Failed",
                        "Error: ImagePullBackOff",
                        component="kubelet",
                        host=ps.node,
                        field_path=self._fp(c),
                    )
                    changed = True
            if changed:
                self._publish(ps)
            now = self.now()
        await self.sleep(max(0.0, wake - now))

    @staticmethod
    def _fp(c: ContainerState) -> str:
        return f"spec.{'initContainers' if c.init else 'containers'}{{{c.name}}}"

    def _pull_outcome(
        self, ns: NodeState, image: Image, ref: str, pod: dict[str, Any]
    ) -> str | None:
        if image.platforms is not None and self.node_arch(ns.name) not in image.platforms:
            return "platform"
        if image.not_found:
            host = img.split_ref(ref)[0].split("/", 1)[0]
            if host in self.scenario.defaults.token_auth_registries:
                return "insufficientScope"
            return "notFound"
        if image.private_secret is not None:
            names = {s.get("name") for s in pod["spec"].get("imagePullSecrets") or []}
            if (
                image.private_secret not in names
                or self.store.get("Secret", pod["metadata"]["namespace"], image.private_secret)
                is None
            ):
                return "unauthorized"
        if image.rate_limited:
            return "tooManyRequests"
        if image.flaky is not None and ns.flaky_failures[ref] < image.flaky.failures:
            return image.flaky.error  # counted once the attempt completes
        return None

    def _pull_seconds(self, ns: NodeState, image: Image, present: bool) -> float:
        d = self.scenario.defaults
        jitter = 1 + self.rng.uniform(-d.pull_jitter, d.pull_jitter)
        if present:
            return d.pull_overhead_seconds * jitter
        ps = image.pull_seconds if image.pull_seconds is not None else d.pull_seconds
        if isinstance(ps, int | float):
            return float(ps) * jitter
        if ps is not None:
            return self.rng.lognormvariate(math.log(ps.median), ps.sigma)
        return (d.pull_overhead_seconds + image.size / ns.bandwidth) * jitter

    async def _ensure_image(
        self, ps: PodState, ns: NodeState, c: ContainerState, pod: dict[str, Any]
    ) -> bool:
        """EnsureImageExists: True when the image is on the node (pulled now or before)."""
        ref = img.normalize(c.image)
        fp = self._fp(c)
        present = ref in ns.images
        if c.policy == "Never" or (present and c.policy == "IfNotPresent"):
            if present:
                self.record_event(
                    pod,
                    "Normal",
                    "Pulled",
                    f'Container image "{c.image}" already present on machine',
                    component="kubelet",
                    host=ns.name,
                    field_path=fp,
                )
                c.pulled = True
                return True
            c.reason = "ErrImageNeverPull"
            c.message = f'Container image "{c.image}" is not present with pull policy of Never'
            c.backoff_until = float("inf")
            self.record_event(
                pod,
                "Warning",
                "ErrImageNeverPull",
                c.message,
                component="kubelet",
                host=ns.name,
                field_path=fp,
            )
            self._publish(ps)
            return False
        image = self.scenario.image(c.image)
        queued = self.now()
        self.record_event(
            pod,
            "Normal",
            "Pulling",
            f'Pulling image "{c.image}"',
            component="kubelet",
            host=ns.name,
            field_path=fp,
        )
        async with ns.pull_lock:
            ns.pulling += 1
            self.max_parallel_pulls[ns.name] = max(
                self.max_parallel_pulls.get(ns.name, 0), ns.pulling
            )
            try:
                started = self.now()
                outcome = self._pull_outcome(ns, image, ref, pod)
                took = (
                    0.1 + self.rng.random() * 0.2
                    if outcome
                    else self._pull_seconds(ns, image, present)
                )
                finished = await self._sleep_unless_down(ns, took)
            finally:
                ns.pulling -= 1
        if ps.key not in self.pods:
            return False
        if not finished:
            # The node went down mid-pull: nothing landed. Its kubelet starts over once it is back.
            await ns.ready.wait()
            return await self._ensure_image(ps, ns, c, pod)
        if outcome is not None and image.flaky is not None and outcome == image.flaky.error:
            ns.flaky_failures[ref] += 1
        if outcome is not None:
            error = img.pull_error(outcome, c.image)
            self.pull_failures[(ns.name, c.image)] += 1
            c.backoff = (
                IMAGE_BACKOFF_INITIAL if not c.backoff else min(c.backoff * 2, IMAGE_BACKOFF_MAX)
            )
            c.backoff_until = self.now() + c.backoff
            c.reason, c.message, c.last_error = "ErrImagePull", error, error
            c.backoff_reported = False
            self.record_event(
                pod,
                "Warning",
                "Failed",
                f'Failed to pull image "{c.image}": {error}',
                component="kubelet",
                host=ns.name,
                field_path=fp,
            )
            self.record_event(
                pod,
                "Warning",
                "Failed",
                "Error: ErrImagePull",
                component="kubelet",
                host=ns.name,
                field_path=fp,
            )
            self._publish(ps)
            return False
        ns.images.pop(ref, None)
        ns.images[ref] = image.size
        self.pull_counts[(ns.name, c.image)] += 1
        self._node_status_soon(ns)
        done = self.now()
        c.pulled = True
        c.reason, c.message = "ContainerCreating", None
        self.record_event(
            pod,
            "Normal",
            "Pulled",
            f'Successfully pulled image "{c.image}" in {_dur(done - started)} '
            f"({_dur(done - queued)} including waiting). Image size: {image.size} bytes.",
            component="kubelet",
            host=ns.name,
            field_path=fp,
        )
        return True

    async def _sleep_unless_down(self, ns: NodeState, sim_seconds: float) -> bool:
        """Sleep; False as soon as the node goes NotReady (a dead node finishes nothing)."""
        if not ns.ready.is_set():
            return False
        sleeper = asyncio.ensure_future(self.sleep(sim_seconds))
        down = asyncio.ensure_future(ns.down.wait())
        try:
            await asyncio.wait({sleeper, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            down.cancel()
        return ns.ready.is_set() and sleeper.done() and not sleeper.cancelled()

    async def _create_container_errors(
        self, ps: PodState, ns: NodeState, c: ContainerState, pod: dict[str, Any]
    ) -> None:
        await create_errors.create_container_errors(self, ps, ns, c, pod)

    def _start_failure(self, c: ContainerState, pod: dict[str, Any]) -> str | None:
        """The executable a shell-less image cannot exec, if any."""
        image = self.scenario.image(c.image)
        if image.shell or not c.command:
            return None
        exe = c.command[0]
        if any(m and exe.startswith(m.rstrip("/") + "/") for m in c.mounts):
            return None
        return exe if exe.rsplit("/", 1)[-1] in img.SHELLS else None

    async def _run_container(
        self,
        ps: PodState,
        ns: NodeState,
        c: ContainerState,
        pod: dict[str, Any],
        rp: str,
        *,
        init: bool,
    ) -> None:
        """Create, start and (for run-to-completion pods) finish one container."""
        fp = self._fp(c)
        await self._create_container_errors(ps, ns, c, pod)
        c.container_id = "containerd://" + secrets.token_hex(32)
        bad = self._start_failure(c, pod)
        self.record_event(
            pod,
            "Normal",
            "Created",
            f"Created container: {c.name}",
            component="kubelet",
            host=ns.name,
            field_path=fp,
        )
        if bad is not None:
            msg = img.start_error(bad)
            c.state, c.reason, c.message, c.exit_code = "terminated", "StartError", msg, 128
            c.started_at, c.finished_at = EPOCH, now_iso()
            self.record_event(
                pod,
                "Warning",
                "Failed",
                f"Error: {msg}",
                component="kubelet",
                host=ns.name,
                field_path=fp,
            )
            self._publish(ps)
            return
        self.record_event(
            pod,
            "Normal",
            "Started",
            f"Started container {c.name}",
            component="kubelet",
            host=ns.name,
            field_path=fp,
        )
        c.state, c.reason, c.message, c.started_at = "running", "", None, now_iso()
        self._publish(ps)
        if rp == "Always" and not init:
            return  # a long-running service container: it stays up
        await self.sleep(self.scenario.defaults.container_run_seconds)
        await ns.ready.wait()
        c.state, c.reason, c.exit_code, c.finished_at = "terminated", "Completed", 0, now_iso()
        self._publish(ps)

    async def _container_life(
        self, ps: PodState, ns: NodeState, c: ContainerState, pod: dict[str, Any], rp: str
    ) -> None:
        try:
            while True:
                await self._run_container(ps, ns, c, pod, rp, init=False)
                if c.state != "terminated" or c.exit_code == 0 or rp == "Never":
                    return
                await self._crash_backoff(ps, c)
        except asyncio.CancelledError:
            pass

    async def _crash_backoff(self, ps: PodState, c: ContainerState) -> None:
        pod = self._pod(ps)
        if pod is None:
            return
        c.last_state = c.status("OnFailure")["state"]
        c.restarts += 1
        delay = min(IMAGE_BACKOFF_INITIAL * 2 ** (c.restarts - 1), IMAGE_BACKOFF_MAX)
        if c.reason == "StartError":
            # The sync that failed to start it reports RunContainerError; the next one backs off.
            c.state, c.reason = "waiting", "RunContainerError"
            self._publish(ps)
            await self.sleep(min(1.0, delay))
            delay -= min(1.0, delay)
        c.state, c.reason = "waiting", "CrashLoopBackOff"
        c.message = (
            f"back-off {int(delay)}s restarting failed container={c.name} "
            f"pod={ps.key[1]}_{ps.key[0]}({ps.uid})"
        )
        self.record_event(
            pod,
            "Warning",
            "BackOff",
            "Back-off restarting failed container "
            f"{c.name} in pod {ps.key[1]}_{ps.key[0]}({ps.uid})",
            component="kubelet",
            host=ps.node,
            field_path=self._fp(c),
        )
        self._publish(ps)
        await self.sleep(delay)

    # -- pod deletion -----------------------------------------------------------------------
    def delete_pod(self, namespace: str, name: str, grace: int | None = None) -> Entry | None:
        """Graceful deletion: mark, let the kubelet stop the containers, then remove."""
        e = self.store.get("Pod", namespace, name)
        if e is None:
            return None
        pod = e.obj
        ps = self.pods.get((namespace, name))
        if grace is None:
            grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        bound = bool(pod["spec"].get("nodeName")) and ps is not None and ps.node in self.nodes
        if grace == 0 or not bound:
            return self._remove_pod(namespace, name)
        if pod["metadata"].get("deletionTimestamp"):
            return e
        assert ps is not None
        ps.terminating = True
        pod["metadata"]["deletionTimestamp"] = now_iso()
        pod["metadata"]["deletionGracePeriodSeconds"] = grace
        entry = self.store.update("Pod", pod)
        termination.start(self, ps, grace)
        return entry

    def _remove_pod(self, namespace: str, name: str) -> Entry | None:
        ps = self.pods.pop((namespace, name), None)
        if ps is not None:
            if ps.task is not None:
                ps.task.cancel()
            if ps.term_task is not None and ps.term_task is not asyncio.current_task():
                ps.term_task.cancel()
            eviction = self.evictions.pop(ps.key, None)
            if eviction is not None:
                eviction.cancel()
            for t in list(ps.tasks):
                t.cancel()
            if ps.node and ps.node in self.nodes:
                self.nodes[ps.node].pods.discard(ps.key)
            self.unschedulable.discard(ps.key)
        entry = self.store.delete("Pod", namespace, name)
        if entry is not None:
            for o in entry.obj["metadata"].get("ownerReferences", []):
                uid = o.get("uid", "")
                owned = self.owned.get(uid)
                if owned is not None:
                    owned.discard((namespace, name))
                    if not owned:
                        del self.owned[uid]
                if uid in self.foreground:
                    self._await_dependents(*self.foreground[uid], uid)
        return entry

    # -- job controller ---------------------------------------------------------------------
    def job_created(self, entry: Entry) -> None:
        job = entry.obj
        md = job["metadata"]
        js = JobState((md["namespace"], md["name"]), md["uid"])
        self.jobs[js.uid] = js
        ts = now_iso()
        job["status"] = {
            "startTime": ts,
            "active": 0,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
        }
        ads = job["spec"].get("activeDeadlineSeconds")
        if ads:
            js.timers.append(self.later(float(ads), self._job_deadline, js.uid))
        if job["spec"].get("suspend"):
            job["status"] = {"active": 0, "ready": 0, "terminating": 0}
            self.store.update("Job", job)
        self._job_sync(js)  # stores the status with the first pod counted

    def _job_obj(self, js: JobState) -> dict[str, Any] | None:
        e = self.store.get("Job", *js.key)
        return e.obj if e and e.obj["metadata"]["uid"] == js.uid else None

    def _job_sync(self, js: JobState) -> None:
        job = self._job_obj(js)
        if job is None or js.finished or job["metadata"].get("deletionTimestamp"):
            return
        spec = job["spec"]
        if spec.get("suspend"):
            return
        if js.failed > spec["backoffLimit"]:
            self._job_finish(
                js,
                job,
                False,
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
            return
        if js.succeeded >= spec["completions"]:
            self._job_finish(
                js, job, True, "CompletionsReached", "Reached expected number of succeeded pods"
            )
            return
        want = min(spec["parallelism"], spec["completions"] - js.succeeded) - len(js.active)
        if want > 0 and not js.token_ready:
            # The controller's client waits for its rate limiter: 2 requests per new pod.
            delay = self.pace.reserve(self.now(), 2 * want)
            if delay > 0:
                js.token_ready = True
                if not js.sync_pending:
                    js.sync_pending = True
                    js.timers.append(self.later(delay, self._job_resync, js.uid))
                self._job_status(js, job)
                return
        if want > 0:
            wait = js.next_pod_at - self.now()
            if wait > 0:
                if not js.sync_pending:
                    js.sync_pending = True
                    js.timers.append(self.later(wait, self._job_resync, js.uid))
            else:
                js.token_ready = False
                for _ in range(want):  # slow start: stop at the first refused create
                    if not self._create_job_pod(js, job):
                        break
        if self._job_obj(js) is not None:
            self._job_status(js, job)

    def job_spec_changed(self, uid: str) -> None:
        """After an API write to a Job (e.g. `suspend` flipped back to false)."""
        js = self.jobs.get(uid)
        if js is not None:
            self._job_sync(js)

    def _job_resync(self, uid: str) -> None:
        js = self.jobs.get(uid)
        if js is not None:
            js.sync_pending = False
            self._job_sync(js)

    def _job_status(self, js: JobState, job: dict[str, Any]) -> None:
        st = job["status"]
        st["active"] = len(js.active)
        if not st["active"]:
            st.pop("active")
        ready = 0
        for key in js.active:
            e = self.store.get("Pod", *key)
            if e and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in e.obj["status"].get("conditions", [])
            ):
                ready += 1
        st["ready"] = ready
        st["terminating"] = len(js.terminating)
        if js.succeeded:
            st["succeeded"] = js.succeeded
        if js.failed:
            st["failed"] = js.failed
        self.store.update("Job", job)

    def _create_job_pod(self, js: JobState, job: dict[str, Any]) -> bool:
        from kubesim.validation import add_default_tolerations

        md = job["metadata"]
        tmpl = job["spec"]["template"]
        name = f"{md['name']}-{''.join(self.rng.choice(POD_NAME_CHARS) for _ in range(5))}"
        while self.store.get("Pod", md["namespace"], name) is not None:
            name = f"{md['name']}-{''.join(self.rng.choice(POD_NAME_CHARS) for _ in range(5))}"
        labels = dict((tmpl.get("metadata") or {}).get("labels") or {})
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": js.uid,
                "batch.kubernetes.io/job-name": md["name"],
                "controller-uid": js.uid,
                "job-name": md["name"],
            }
        )
        spec = copy.deepcopy(tmpl["spec"])
        add_default_tolerations(spec, self.scenario.control_plane.default_toleration_seconds)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "generateName": f"{md['name']}-",
                "namespace": md["namespace"],
                "labels": labels,
                "annotations": dict((tmpl.get("metadata") or {}).get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": md["name"],
                        "uid": js.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "BestEffort"},
        }
        try:
            admission.admit(self, pod, f"{md['name']}-")
        except admission.Denied as d:
            # RealPodControl.createPods records the event; the sync is requeued, rate limited.
            self.record_event(
                job, "Warning", "FailedCreate", f"Error creating: {d}", component="job-controller"
            )
            js.create_backoff = min(max(1.0, js.create_backoff * 2), 60.0)
            if not js.sync_pending:
                js.sync_pending = True
                js.timers.append(self.later(js.create_backoff, self._job_resync, js.uid))
            return False
        js.create_backoff = 0.0
        entry = self.store.create("Pod", pod)
        js.active.add((md["namespace"], name))
        self.record_event(
            job, "Normal", "SuccessfulCreate", f"Created pod: {name}", component="job-controller"
        )
        self.pod_created(entry)
        return True

    def _job_finish(
        self, js: JobState, job: dict[str, Any], ok: bool, reason: str, message: str
    ) -> None:
        job_conditions.finish(self, js, job, ok, reason, message)

    def _job_final(self, js: JobState) -> None:
        job_conditions.final(self, js)

    def _job_ttl(self, uid: str) -> None:
        js = self.jobs.get(uid)
        if js is not None and self._job_obj(js) is not None:
            self.delete_job(*js.key, policy="Background")

    def _job_deadline(self, uid: str) -> None:
        js = self.jobs.get(uid)
        job = self._job_obj(js) if js else None
        if js is None or job is None or js.finished:
            return
        self._job_finish(
            js, job, False, "DeadlineExceeded", "Job was active longer than specified deadline"
        )

    def _on_pod_event(self, type_: str, entry: Entry, prev: Entry | None) -> None:
        """The Job controller's pod informer: count terminal pods, replace failed ones."""
        pod = entry.obj
        owner = next(
            (o for o in pod["metadata"].get("ownerReferences", []) if o.get("kind") == "Job"), None
        )
        if owner is None:
            return
        js = self.jobs.get(owner["uid"])
        if js is None:
            return
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        phase = pod.get("status", {}).get("phase")
        if key in js.terminating and (type_ == "DELETED" or phase in ("Succeeded", "Failed")):
            js.terminating.discard(key)
            job = self._job_obj(js)
            if job is not None:
                self._job_status(js, job)
            self._job_final(js)
            return
        if key not in js.active:
            return
        if phase == "Succeeded":
            js.active.discard(key)
            js.succeeded += 1
        elif phase == "Failed" or type_ == "DELETED":
            js.active.discard(key)
            js.failed += 1
            js.next_pod_at = self.now() + min(
                JOB_BACKOFF_INITIAL * 2 ** (js.failed - 1), JOB_BACKOFF_MAX
            )
        else:
            if type_ == "MODIFIED" and prev is not None:
                job = self._job_obj(js)
                if job is not None and not js.finished:
                    was = _is_ready(prev.raw)
                    now = any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in pod["status"].get("conditions", [])
                    )
                    if was != now:
                        self._job_status(js, job)
            return
        assert self.loop is not None
        self.loop.call_soon(self._job_sync, js)

    def delete_job(
        self, namespace: str, name: str, policy: str | None
    ) -> tuple[Entry | None, bool]:
        """Returns (entry, still_present). Default policy for batch/v1 is Orphan."""
        e = self.store.get("Job", namespace, name)
        if e is None:
            return None, False
        job = e.obj
        uid = job["metadata"]["uid"]
        js = self.jobs.get(uid)
        policy = policy or "Orphan"
        dependents = [
            e
            for key in sorted(self.owned.get(uid, ()))
            if (e := self.store.get("Pod", *key)) is not None
        ]
        if js is not None:
            for t in js.timers:
                t.cancel()
            js.finished = True
        if policy == "Foreground" and dependents:
            job["metadata"]["deletionTimestamp"] = now_iso()
            job["metadata"]["deletionGracePeriodSeconds"] = 0
            job["metadata"]["finalizers"] = ["foregroundDeletion"]
            entry = self.store.update("Job", job)
            for p in dependents:
                self.delete_pod(p.obj["metadata"]["namespace"], p.obj["metadata"]["name"])
            self.foreground[uid] = (namespace, name)
            self._await_dependents(namespace, name, uid)
            return entry, True
        if policy == "Orphan":
            self.owned.pop(uid, None)
            for p in dependents:
                refs = [o for o in p.obj["metadata"]["ownerReferences"] if o.get("uid") != uid]
                if refs:
                    p.obj["metadata"]["ownerReferences"] = refs
                else:
                    p.obj["metadata"].pop("ownerReferences")
                self.store.update("Pod", p.obj)
        gone = self.store.delete("Job", namespace, name)
        self.jobs.pop(uid, None)
        if policy == "Background":
            for p in dependents:
                self.delete_pod(p.obj["metadata"]["namespace"], p.obj["metadata"]["name"])
        return gone, False

    def _await_dependents(self, namespace: str, name: str, uid: str) -> None:
        if self.owned.get(uid):
            return  # _remove_pod calls again as each dependent goes
        self.foreground.pop(uid, None)
        e = self.store.get("Job", namespace, name)
        if e is not None and e.obj["metadata"]["uid"] == uid:
            self.store.delete("Job", namespace, name)
        self.jobs.pop(uid, None)

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


def _is_ready(raw: bytes) -> bool:
    return b'"type":"Ready","status":"True"' in raw


def _dur(seconds: float) -> str:
    """Go's time.Duration formatting, as in the kubelet's Pulled message."""
    if seconds < 1:
        return f"{seconds * 1000:.3f}".rstrip("0").rstrip(".") + "ms"
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    m, sec = divmod(seconds, 60)
    return f"{int(m)}m" + f"{sec:.3f}".rstrip("0").rstrip(".") + "s"


def _tolerates(tols: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for t in tols:
        if t.get("effect") and t["effect"] != taint["effect"]:
            continue
        if t.get("operator", "Equal") == "Exists":
            if not t.get("key") or t["key"] == taint["key"]:
                return True
        elif t.get("key") == taint["key"] and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _match_expr(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator"), expr.get("values") or []
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels and values:
        with contextlib.suppress(ValueError):
            a, b = int(labels[key]), int(values[0])
            return a > b if op == "Gt" else a < b
    return False


def pinned_node(spec: dict[str, Any]) -> str | None:
    """The one node a required `matchFields metadata.name In [node]` term allows (a DaemonSet
    pod's, or an IPS pull pod's), so only that node is filtered, as the scheduler's NodeAffinity
    PreFilter narrows the candidates (pkg/scheduler/framework/plugins/nodeaffinity, PreFilter).
    _affinity_ok still checks the whole affinity on it."""
    req = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    terms = (req or {}).get("nodeSelectorTerms") or []
    names: set[str] = set()
    for term in terms:
        fields = [f for f in term.get("matchFields") or [] if f.get("key") == "metadata.name"]
        if len(fields) != 1 or fields[0].get("operator") != "In":
            return None
        names.update(fields[0].get("values") or [])
    return next(iter(names)) if len(names) == 1 else None


def _affinity_ok(spec: dict[str, Any], node: dict[str, Any]) -> bool:
    labels = node["metadata"].get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    req = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if req:
        terms = req.get("nodeSelectorTerms") or []
        fields = {"metadata.name": node["metadata"]["name"]}

        def term_ok(term: dict[str, Any]) -> bool:
            exprs = term.get("matchExpressions") or []
            fexprs = term.get("matchFields") or []
            if not exprs and not fexprs:
                return False
            return all(_match_expr(e, labels) for e in exprs) and all(
                _match_expr(e, fields) for e in fexprs
            )

        if not any(term_ok(t) for t in terms):
            return False
    return True


def filter_node(spec: dict[str, Any], node: dict[str, Any]) -> str | None:
    """The default scheduler's filters in order; the first failing reason, or None if it fits."""
    tols = spec.get("tolerations") or []
    if node["spec"].get("unschedulable") and not _tolerates(
        tols, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    ):
        return "node(s) were unschedulable"
    for taint in node["spec"].get("taints") or []:
        if taint["effect"] in ("NoSchedule", "NoExecute") and not _tolerates(tols, taint):
            if taint["key"] == "node.kubernetes.io/unschedulable":
                continue  # reported by NodeUnschedulable above
            return f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value') or ''}}}"
    if not _affinity_ok(spec, node):
        return "node(s) didn't match Pod's node affinity/selector"
    return None
