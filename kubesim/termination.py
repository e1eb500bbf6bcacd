"""The kubelet's side of pod deletion: stop the containers, write a terminal status, then remove.

Follows kubernetes/kubernetes `pkg/kubelet/status/status_manager.go` (`TerminatePod`,
`hasPodInitialized`, `initializedContainers`) and the status manager's final force delete once the
pod is terminal and has a deletionTimestamp (`syncPod` -> `canBeDeleted`):

- every container that is not terminated, once the pod has initialized, becomes
  `terminated {reason: ContainerStatusUnknown, exitCode: 137, message: "The container could not
  be located when the pod was terminated"}`; init containers likewise, except the trailing suffix
  that never started;
- a pod in phase Pending or Running becomes `Failed`;
- only then is the pod removed (DELETED).

While the node is NotReady (the kubelet is unreachable) nothing happens: the pod stays
Terminating, exactly as on a real cluster.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from kubesim import gc, kubelet
from kubesim.store import now_iso

if TYPE_CHECKING:
    from kubesim.cluster import Cluster
    from kubesim.state import ContainerState, PodState

UNKNOWN_REASON = "ContainerStatusUnknown"
UNKNOWN_MESSAGE = "The container could not be located when the pod was terminated"
UNKNOWN_EXIT_CODE = 137


def _unknown(c: ContainerState) -> None:
    c.state, c.reason, c.message, c.exit_code = (
        "terminated",
        UNKNOWN_REASON,
        UNKNOWN_MESSAGE,
        UNKNOWN_EXIT_CODE,
    )
    c.started_at = c.finished_at = None
    c.container_id = None


def _killed(c: ContainerState) -> None:
    """A running container the kubelet stopped (SIGTERM, then SIGKILL after the grace period)."""
    c.state, c.reason, c.message, c.exit_code = "terminated", "Error", None, 137
    c.finished_at = now_iso()


def has_pod_initialized(ps: PodState) -> bool:
    inits = [c for c in ps.containers if c.init]
    mains = [c for c in ps.containers if not c.init]
    if not inits:
        return True
    if any(c.last_state or c.state != "waiting" for c in mains):
        return True
    last = inits[-1]
    return last.state == "terminated" and last.exit_code == 0


def initialized_containers(inits: list[ContainerState]) -> list[ContainerState]:
    """All but the trailing suffix of init containers still waiting (at least the first)."""
    for i in range(len(inits) - 1, -1, -1):
        if inits[i].state != "waiting" or inits[i].last_state:
            return inits[: i + 1]
    return inits[:1]


def terminate_pod_status(ps: PodState) -> None:
    """TerminatePod: give every unfinished container a terminal state and the pod Failed."""
    mains = [c for c in ps.containers if not c.init]
    inits = [c for c in ps.containers if c.init]
    for c in ps.containers:
        if c.state == "running":
            _killed(c)
    if has_pod_initialized(ps):
        for c in mains:
            if c.state != "terminated":
                _unknown(c)
    for c in initialized_containers(inits):
        if c.state != "terminated":
            _unknown(c)
    ps.final_phase = "Failed"


def start(cluster: Cluster, ps: PodState, grace: int) -> None:
    """The kubelet notices the deletionTimestamp and runs the pod's termination."""
    assert cluster.loop is not None
    ps.term_task = cluster.loop.create_task(_terminate(cluster, ps, grace))


async def _terminate(cluster: Cluster, ps: PodState, grace: int) -> None:
    try:
        node_state = cluster.nodes.get(ps.node or "")
        if node_state is None:
            return  # the pod GC takes care of pods on nodes that are gone
        await node_state.ready.wait()  # an unreachable kubelet: the pod stays Terminating
        await node_state.reachable.wait()  # a partitioned one does not see the deletion yet
        pod = cluster.pod_object(ps)
        if pod is None:
            return
        # Stop the pod workers (pulls, back-offs, running containers).
        if ps.task is not None:
            ps.task.cancel()
        for t in list(ps.tasks):
            t.cancel()
        terminal = pod["status"].get("phase") in ("Succeeded", "Failed")
        if not terminal:
            running = any(c.state == "running" for c in ps.containers)
            if running:
                await cluster.sleep(
                    min(float(grace), cluster.scenario.control_plane.pod_kill_seconds)
                )
            terminate_pod_status(ps)
            kubelet.publish_status(cluster, ps)
            # The status manager's force delete follows its status write.
            await asyncio.sleep(0)
        gc.remove_pod(cluster, *ps.key)
    except asyncio.CancelledError:
        pass
