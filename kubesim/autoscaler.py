"""Nodes that join and leave the way an autoscaler's do: NotReady first, Ready after a delay,
startup taints removed later; deleted (after an optional drain) when scaled down.

What a real join looks like through a node watch (each step one write, so one event):

1. ADDED: the kubelet registers the Node. The `TaintNodesAtCreation` admission plugin adds
   `node.kubernetes.io/not-ready:NoSchedule` (plugin/pkg/admission/nodetaint/admission.go,
   `Admit` / `initTaints`); the kubelet's `--register-with-taints` add the startup taints (the
   external cloud provider's `node.cloudprovider.kubernetes.io/uninitialized`, an autoscaler's
   `ignore-taint.cluster-autoscaler.kubernetes.io/...` or `startup-taint...`). Ready is False:
   "container runtime network not ready ... cni plugin not initialized".
2. MODIFIED: the node lifecycle controller sees Ready=False and adds the not-ready NoExecute
   taint (pkg/controller/nodelifecycle/node_lifecycle_controller.go,
   `processTaintBaseEviction` -> `markNodeForTainting`, applied by `doNoExecuteTaintingPass`).
3. MODIFIED after `readyAfterSeconds`: the kubelet posts Ready=True.
4. MODIFIED: the node lifecycle controller takes the not-ready taints off: NoExecute in
   `processTaintBaseEviction` (`markNodeAsReachable`), NoSchedule in `doNoScheduleTaintingPass`,
   which maps conditions to taints with `nodeConditionToTaintKeyStatusMap`.
5. MODIFIED after `taintsRemovedAfterSeconds` more: the startup taints go (for the cloud taint
   the cloud node controller, staging/src/k8s.io/cloud-provider/controllers/node/
   node_controller.go `syncNode`, once it initialized the node; for the others the daemon that
   owns them).
6. Scale-down: MODIFIED with `ToBeDeletedByClusterAutoscaler:NoSchedule` when `drainSeconds` >
   0 (the cluster autoscaler's taint while it drains), then DELETED.

Schedules (the scenario's `autoscaler:` section) run on the cluster's clock, so they are
time-scaled like everything else; `join` and `leave` are also called at runtime (control.py,
kubesim.testing).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubesim import node_lifecycle, node_pressure, nodes, scheduler
from kubesim.node_objects import node_conditions
from kubesim.scenario import Autoscaler, Taint
from kubesim.store import now_iso

if TYPE_CHECKING:
    from kubesim.cluster import Cluster

NOT_READY = node_lifecycle.NOT_READY
TO_BE_DELETED = "ToBeDeletedByClusterAutoscaler"
CNI_NOT_READY = (
    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
    "message:Network plugin returns error: cni plugin not initialized"
)
# The node lifecycle controller's NoExecute tainting runs every NodeEvictionPeriod (100 ms).
NO_EXECUTE_PASS_SECONDS = 0.1
# The schedules draw from their own generator, so they never shift the cluster's seeded choices.
SCHEDULE_SEED_OFFSET = 4243


@dataclass(eq=False)
class Joined:
    """One node an autoscaler added: simulated times (`cluster.now()`) and wall-clock ones."""

    name: str
    group: str
    joined: float
    joined_wall: float
    startup_taints: list[str]
    ready: float | None = None
    ready_wall: float | None = None
    untainted: float | None = None
    untainted_wall: float | None = None
    left: float | None = None
    left_wall: float | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "startupTaints": self.startup_taints,
            "joinedAt": self.joined,
            "readyAt": self.ready,
            "untaintedAt": self.untainted,
            "leftAt": self.left,
            "joinedWall": self.joined_wall,
            "readyWall": self.ready_wall,
            "untaintedWall": self.untainted_wall,
            "leftWall": self.left_wall,
        }


@dataclass(eq=False)
class Autoscaling:
    """The cluster's record of joined nodes (by name, in join order) and its schedule."""

    joined: dict[str, Joined] = field(default_factory=dict)
    scheduled_joins: int = 0
    origin: float = 0.0  # cluster.now() when the schedule started
    rng: random.Random = field(default_factory=random.Random)


def settings(cluster: Cluster) -> Autoscaler:
    return cluster.scenario.autoscaler or Autoscaler()


def start(cluster: Cluster) -> None:
    """Start the scenario's join schedule (and nothing if it has none)."""
    cluster.autoscaling.rng = random.Random(cluster.seed + SCHEDULE_SEED_OFFSET)
    cluster.autoscaling.origin = cluster.now()
    conf = cluster.scenario.autoscaler
    if conf is not None and conf.join_every_seconds is not None:
        cluster.later(conf.start_seconds, _scale_up, cluster)


def _scale_up(cluster: Cluster) -> None:
    conf = settings(cluster)
    state = cluster.autoscaling
    if conf.stop_seconds is not None and cluster.now() > state.origin + conf.stop_seconds:
        return
    count = conf.join_count
    if conf.max_joins is not None:
        count = min(count, conf.max_joins - state.scheduled_joins)
    if count <= 0:
        return
    state.scheduled_joins += count
    join(cluster, count)
    assert conf.join_every_seconds is not None
    wait = conf.join_every_seconds
    if conf.arrivals == "poisson":
        wait = state.rng.expovariate(1.0 / wait)
    cluster.later(wait, _scale_up, cluster)


def _jittered(rng: random.Random, seconds: float, jitter: float) -> float:
    return seconds * (1 + rng.uniform(-jitter, jitter)) if jitter else seconds


def join(
    cluster: Cluster,
    count: int,
    group: str | None = None,
    *,
    ready_after: float | None = None,
    taints_removed_after: float | None = None,
    startup_taints: list[Taint] | None = None,
    lifetime: float | None = None,
) -> list[str]:
    """`count` nodes register NotReady with the startup taints; each turns Ready after
    `ready_after` (+/- the jitter) and loses its startup taints `taints_removed_after` later.
    Omitted arguments come from the scenario's `autoscaler:` section (or its defaults)."""
    conf = settings(cluster)
    group = group or conf.group
    rng = cluster.autoscaling.rng
    taints = conf.startup_taints if startup_taints is None else startup_taints
    names = []
    for node in nodes.joining_nodes(cluster, count, group):
        name = node["metadata"]["name"]
        node["status"]["conditions"] = _registering_conditions(now_iso())
        spec_taints = node["spec"].get("taints", [])
        ts = now_iso()
        spec_taints.append({"key": NOT_READY, "effect": "NoSchedule", "timeAdded": ts})
        spec_taints += [t.model_dump(exclude_none=True) for t in taints]
        node["spec"]["taints"] = spec_taints
        record = Joined(
            name,
            node["_kubesim"]["group"],
            cluster.now(),
            time.time(),
            [t.key for t in taints],
        )
        nodes.add_node_object(cluster, node)  # ADDED
        cluster.autoscaling.joined[name] = record
        ready = conf.ready_after_seconds if ready_after is None else ready_after
        ready = _jittered(rng, ready, conf.ready_jitter)
        untaint = (
            conf.taints_removed_after_seconds
            if taints_removed_after is None
            else taints_removed_after
        )
        record.timers.append(
            cluster.later(NO_EXECUTE_PASS_SECONDS, _no_execute_pass, cluster, name)
        )
        record.timers.append(cluster.later(ready, _kubelet_ready, cluster, record, untaint))
        life = conf.lifetime_seconds if lifetime is None else lifetime
        if life is not None:
            life = _jittered(rng, life, conf.lifetime_jitter)
            record.timers.append(cluster.later(life, _scale_down, cluster, name))
        names.append(name)
    return names


def _registering_conditions(ts: str) -> list[dict[str, Any]]:
    conds = node_conditions(True, ts)
    conds[-1].update(status="False", reason="KubeletNotReady", message=CNI_NOT_READY)
    return conds


def _write_taints(cluster: Cluster, name: str, keep: Any, add: list[dict[str, Any]]) -> bool:
    """One write of the node's taints: those `keep(taint)` accepts, plus `add`."""
    node = cluster.node_obj(name)
    if node is None:
        return False
    old = node["spec"].get("taints", [])
    new = [t for t in old if keep(t)] + add
    if new == old:
        return False
    nodes.set_taints(node, new)
    cluster.store.update("Node", node)
    node_lifecycle.taint_pass(cluster, name)
    return True


def _no_execute_pass(cluster: Cluster, name: str) -> None:
    node = cluster.node_obj(name)
    if node is None or node["status"]["conditions"][-1]["status"] == "True":
        return
    taint = {"key": NOT_READY, "effect": "NoExecute", "timeAdded": now_iso()}
    _write_taints(
        cluster, name, lambda t: (t["key"], t["effect"]) != (NOT_READY, "NoExecute"), [taint]
    )


def _kubelet_ready(cluster: Cluster, record: Joined, untaint_after: float) -> None:
    node = cluster.node_obj(record.name)
    node_state = cluster.nodes.get(record.name)
    if node is None or node_state is None:
        return
    conds = node_conditions(True, now_iso(), disk_pressure=node_state.disk_pressure)
    node["status"]["conditions"] = conds
    cluster.store.update("Node", node)  # the kubelet's status update
    node_state.down.clear()
    node_state.ready.set()
    record.ready, record.ready_wall = cluster.now(), time.time()
    # The node lifecycle controller's pass: both not-ready taints off, in one patch.
    _write_taints(cluster, record.name, lambda t: t["key"] != NOT_READY, [])
    node_pressure.taint_pass(cluster, record.name)
    scheduler.retry_unschedulable(cluster)
    if record.startup_taints:
        record.timers.append(cluster.later(untaint_after, _remove_startup_taints, cluster, record))
    else:
        record.untainted, record.untainted_wall = record.ready, record.ready_wall


def _remove_startup_taints(cluster: Cluster, record: Joined) -> None:
    keys = set(record.startup_taints)
    if _write_taints(cluster, record.name, lambda t: t["key"] not in keys, []):
        scheduler.retry_unschedulable(cluster)
    if record.name in cluster.nodes:
        record.untainted, record.untainted_wall = cluster.now(), time.time()


def _scale_down(cluster: Cluster, name: str) -> None:
    if name in cluster.nodes:
        leave(cluster, [name])


def leave(cluster: Cluster, names: list[str] | None = None, count: int | None = None) -> list[str]:
    """Scale down: the named nodes (any node), or the `count` oldest joined nodes still here.
    With `drainSeconds`, each is tainted ToBeDeletedByClusterAutoscaler first."""
    if names is None:
        present = [n for n in cluster.autoscaling.joined if n in cluster.nodes]
        names = present[: count or 0]
    missing = [n for n in names if n not in cluster.nodes]
    if missing:
        raise KeyError(missing[0])
    drain = settings(cluster).drain_seconds
    for name in names:
        record = cluster.autoscaling.joined.get(name)
        if record is not None:
            for t in record.timers:
                t.cancel()
            record.timers.clear()
        if drain > 0:
            taint = {"key": TO_BE_DELETED, "value": str(int(time.time())), "effect": "NoSchedule"}
            _write_taints(cluster, name, lambda t: t["key"] != TO_BE_DELETED, [taint])
            cluster.later(drain, _delete, cluster, name)
        else:
            _delete(cluster, name)
    return names


def _delete(cluster: Cluster, name: str) -> None:
    if name not in cluster.nodes:
        return
    nodes.delete_node(cluster, name)
    record = cluster.autoscaling.joined.get(name)
    if record is not None:
        record.left, record.left_wall = cluster.now(), time.time()


def report(cluster: Cluster) -> dict[str, Any]:
    """Every joined node's times, and counts."""
    joined = list(cluster.autoscaling.joined.values())
    return {
        "joined": len(joined),
        "ready": sum(r.ready is not None for r in joined),
        "untainted": sum(r.untainted is not None for r in joined),
        "left": sum(r.left is not None for r in joined),
        "nodes": [r.view() for r in joined],
    }
