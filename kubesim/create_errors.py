"""CreateContainerError: a container the runtime fails to create, retried by the kubelet.

An image with `createFailures: k` fails its first k creates on each node with containerd's
name-reservation conflict (containerd `internal/cri/server/container_create.go`
`CreateContainer` -> `reserveContainerName`), a transient error of slow or overloaded runtimes.
The kubelet reports `waiting` `CreateContainerError` with that message and a `Failed` Event
`Error: <message>`, and retries at its next pod sync (`pkg/kubelet/kuberuntime/
kuberuntime_manager.go` `SyncPod`), here after `CREATE_RETRY_SECONDS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubesim import events, kubelet
from kubesim import images as img

if TYPE_CHECKING:
    from kubesim.cluster import Cluster
    from kubesim.state import ContainerState, NodeState, PodState

CREATE_RETRY_SECONDS = 10.0  # a failed pod sync is retried after the pod worker's back-off


async def create_container_errors(
    cluster: Cluster, ps: PodState, node_state: NodeState, c: ContainerState, pod: dict[str, Any]
) -> None:
    """CreateContainerError is not fatal: the kubelet retries at its next pod sync."""
    image = cluster.scenario.image(c.image)
    key = "create:" + img.normalize(c.image)
    while node_state.flaky_failures[key] < image.create_failures:
        node_state.flaky_failures[key] += 1
        c.state, c.reason = "waiting", "CreateContainerError"
        # The attempt in the name is the restart count: it never started, so it stays.
        c.message = img.create_error(c.name, ps.key[1], ps.key[0], ps.uid, c.restarts)
        events.container_event(
            cluster, pod, c, node_state.name, "Warning", "Failed", f"Error: {c.message}"
        )
        kubelet.publish_status(cluster, ps)
        await cluster.sleep(CREATE_RETRY_SECONDS)
        await node_state.ready.wait()
