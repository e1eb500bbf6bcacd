"""The kubelet: one task per pod runs its containers in order (init containers first), writes the
pod status and restarts crashed containers with back-off. Image pulls are in image_pulls.py.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, Any

from kubesim import (
    create_errors,
    events,
    image_pulls,
    nodes,
)
from kubesim import images as img
from kubesim.state import (
    KUBELET_BACKOFF_INITIAL,
    KUBELET_BACKOFF_MAX,
    ContainerState,
    NodeState,
    PodState,
)
from kubesim.store import now_iso

if TYPE_CHECKING:
    from kubesim.cluster import Cluster

# A container that failed to start reports startedAt as the Unix epoch: the runtime's StartedAt
# is 0, and the kubelet turns it into a time as is.
NEVER_STARTED_AT = "1970-01-01T00:00:00Z"


def reachable(cluster: Cluster, node: str) -> bool:
    node_state = cluster.nodes.get(node)
    return node_state is None or node_state.reachable.is_set()


def publish_status(cluster: Cluster, ps: PodState) -> dict[str, Any] | None:
    """Rebuild the pod's status from the kubelet's state and store it."""
    pod = cluster.pod_object(ps)
    if pod is None:
        return None
    if not reachable(cluster, ps.node or ""):
        ps.dirty = True  # the status manager retries once the API server is reachable
        return pod
    ps.dirty = False
    spec = pod["spec"]
    restart_policy = spec.get("restartPolicy", "Always")
    st = pod["status"]
    inits = [c for c in ps.containers if c.init]
    mains = [c for c in ps.containers if not c.init]
    inits_done = all(c.done for c in inits)
    init_failed = (
        any(c.state == "terminated" and c.exit_code != 0 for c in inits)
        and restart_policy == "Never"
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
            phase = "Failed" if restart_policy == "Never" else "Running"
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
        st["conditions"][1]["message"] = f"containers with incomplete status: [{' '.join(pending)}]"
    node_obj = nodes.node_obj(cluster, ps.node or "")
    if node_obj is not None:
        ip = node_obj["status"]["addresses"][0]["address"]
        st["hostIP"] = ip
        st["hostIPs"] = [{"ip": ip}]
        if "podIP" not in st:
            cluster.pod_ips += 1
            n = cluster.pod_ips
            pod_ip = f"10.{128 + (n >> 16) % 128}.{(n >> 8) & 255}.{n & 255}"
            st["podIP"] = pod_ip
            st["podIPs"] = [{"ip": pod_ip}]
    st.setdefault("startTime", ts)
    if inits:
        st["initContainerStatuses"] = [c.status(restart_policy) for c in inits]
    st["containerStatuses"] = [c.status(restart_policy) for c in mains]
    cluster.store.update("Pod", pod)
    return pod


async def run_pod(cluster: Cluster, ps: PodState, node_state: NodeState) -> None:
    """One pod's life on its node: init containers in order, then the containers."""
    try:
        await node_state.reachable.wait()  # a partitioned kubelet does not see new pods
        await node_state.ready.wait()
        pod = publish_status(cluster, ps)
        if pod is None:
            return
        restart_policy = pod["spec"].get("restartPolicy", "Always")
        await pull_secrets_check(cluster, ps, pod)
        for c in (c for c in ps.containers if c.init):
            while not c.done:
                if not await image_pulls.ensure_image(cluster, ps, node_state, c, pod):
                    await image_pulls.wait_backoff(cluster, ps, [c], pod)
                    continue
                await run_container(cluster, ps, node_state, c, pod, restart_policy, init=True)
                if c.state == "terminated" and c.exit_code != 0:
                    if restart_policy == "Never":
                        publish_status(cluster, ps)
                        return
                    await crash_backoff(cluster, ps, c)
            for c in ps.containers:
                if not c.init and c.reason == "PodInitializing":
                    c.reason = "ContainerCreating"
            publish_status(cluster, ps)
        pending = [c for c in ps.containers if not c.init]
        while pending:
            for c in list(pending):
                await node_state.ready.wait()
                if c.backoff_until > cluster.now():
                    continue
                if await image_pulls.ensure_image(cluster, ps, node_state, c, pod):
                    pending.remove(c)
                    loop_task(
                        cluster, ps, container_life(cluster, ps, node_state, c, pod, restart_policy)
                    )
            if pending:
                await image_pulls.wait_backoff(cluster, ps, pending, pod)
    except asyncio.CancelledError:
        pass


def loop_task(cluster: Cluster, ps: PodState, coro: Any) -> None:
    assert cluster.loop is not None
    task = cluster.loop.create_task(coro)
    ps.tasks.add(task)
    task.add_done_callback(ps.tasks.discard)


async def pull_secrets_check(cluster: Cluster, ps: PodState, pod: dict[str, Any]) -> None:
    missing = [
        s.get("name")
        for s in pod["spec"].get("imagePullSecrets") or []
        if cluster.store.get("Secret", ps.key[0], s.get("name", "")) is None
    ]
    if missing:
        events.record_event(
            cluster,
            pod,
            "Warning",
            "FailedToRetrieveImagePullSecret",
            f"Unable to retrieve some image pull secrets ({', '.join(missing)}); attempting "
            "to pull the image may not succeed.",
            component="kubelet",
            host=ps.node,
        )


async def create_container_errors(
    cluster: Cluster, ps: PodState, node_state: NodeState, c: ContainerState, pod: dict[str, Any]
) -> None:
    await create_errors.create_container_errors(cluster, ps, node_state, c, pod)


def start_failure(cluster: Cluster, c: ContainerState, pod: dict[str, Any]) -> str | None:
    """The executable a shell-less image cannot exec, if any."""
    image = cluster.scenario.image(c.image)
    if image.shell or not c.command:
        return None
    exe = c.command[0]
    if any(m and exe.startswith(m.rstrip("/") + "/") for m in c.mounts):
        return None
    return exe if exe.rsplit("/", 1)[-1] in img.SHELLS else None


async def run_container(
    cluster: Cluster,
    ps: PodState,
    node_state: NodeState,
    c: ContainerState,
    pod: dict[str, Any],
    restart_policy: str,
    *,
    init: bool,
) -> None:
    """Create, start and (for run-to-completion pods) finish one container."""
    await create_container_errors(cluster, ps, node_state, c, pod)
    c.container_id = "containerd://" + secrets.token_hex(32)
    bad = start_failure(cluster, c, pod)
    events.container_event(
        cluster, pod, c, node_state.name, "Normal", "Created", f"Created container: {c.name}"
    )
    if bad is not None:
        msg = img.start_error(bad)
        c.state, c.reason, c.message, c.exit_code = "terminated", "StartError", msg, 128
        c.started_at, c.finished_at = NEVER_STARTED_AT, now_iso()
        events.container_event(
            cluster, pod, c, node_state.name, "Warning", "Failed", f"Error: {msg}"
        )
        publish_status(cluster, ps)
        return
    events.container_event(
        cluster, pod, c, node_state.name, "Normal", "Started", f"Started container {c.name}"
    )
    c.state, c.reason, c.message, c.started_at = "running", "", None, now_iso()
    publish_status(cluster, ps)
    if restart_policy == "Always" and not init:
        return  # a long-running service container: it stays up
    await cluster.sleep(cluster.scenario.defaults.container_run_seconds)
    await node_state.ready.wait()
    c.state, c.reason, c.exit_code, c.finished_at = "terminated", "Completed", 0, now_iso()
    publish_status(cluster, ps)


async def container_life(
    cluster: Cluster,
    ps: PodState,
    node_state: NodeState,
    c: ContainerState,
    pod: dict[str, Any],
    restart_policy: str,
) -> None:
    try:
        while True:
            await run_container(cluster, ps, node_state, c, pod, restart_policy, init=False)
            if c.state != "terminated" or c.exit_code == 0 or restart_policy == "Never":
                return
            await crash_backoff(cluster, ps, c)
    except asyncio.CancelledError:
        pass


async def crash_backoff(cluster: Cluster, ps: PodState, c: ContainerState) -> None:
    pod = cluster.pod_object(ps)
    if pod is None:
        return
    c.last_state = c.status("OnFailure")["state"]
    c.restarts += 1
    delay = min(KUBELET_BACKOFF_INITIAL * 2 ** (c.restarts - 1), KUBELET_BACKOFF_MAX)
    if c.reason == "StartError":
        # The sync that failed to start it reports RunContainerError; the next one backs off.
        c.state, c.reason = "waiting", "RunContainerError"
        publish_status(cluster, ps)
        await cluster.sleep(min(1.0, delay))
        delay -= min(1.0, delay)
    c.state, c.reason = "waiting", "CrashLoopBackOff"
    c.message = (
        f"back-off {int(delay)}s restarting failed container={c.name} "
        f"pod={ps.key[1]}_{ps.key[0]}({ps.uid})"
    )
    events.container_event(
        cluster,
        pod,
        c,
        ps.node,
        "Warning",
        "BackOff",
        f"Back-off restarting failed container {c.name} in pod {ps.key[1]}_{ps.key[0]}({ps.uid})",
    )
    publish_status(cluster, ps)
    await cluster.sleep(delay)
