"""The kubelet's image pulls: serial per node, durations from size and bandwidth, real error
messages, and the image back-off (10 s doubling to 300 s) with its ErrImagePull/ImagePullBackOff.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

from kubesim import (
    events,
    kubelet,
    nodes,
    registrypull,
)
from kubesim import images as img
from kubesim.scenario import Image
from kubesim.state import (
    KUBELET_BACKOFF_INITIAL,
    KUBELET_BACKOFF_MAX,
    ContainerState,
    NodeState,
    PodState,
)

if TYPE_CHECKING:
    from kubesim.cluster import Cluster


async def wait_backoff(
    cluster: Cluster, ps: PodState, waiting: list[ContainerState], pod: dict[str, Any]
) -> None:
    """Sleep until the next sync: soon after a failure (to show ImagePullBackOff), else
    until the earliest back-off expires."""
    now = cluster.now()
    changed = False
    for c in waiting:
        if c.reason == "ErrImagePull" and c.backoff_until > now and not c.backoff_reported:
            c.backoff_reported = True
    wake = min(c.backoff_until for c in waiting)
    if math.isinf(wake):
        await asyncio.Event().wait()  # ErrImageNeverPull: nothing will change
    fresh = [c for c in waiting if c.reason == "ErrImagePull"]
    if fresh:
        await cluster.sleep(min(1.0, max(0.0, wake - now)))
        for c in fresh:
            if c.backoff_until > cluster.now() and ps.key in cluster.pods:
                c.reason = "ImagePullBackOff"
                c.message = img.backoff_message(
                    c.image, c.last_error, cluster.scenario.defaults.kubelet_version
                )
                events.container_event(
                    cluster,
                    pod,
                    c,
                    ps.node,
                    "Normal",
                    "BackOff",
                    f'Back-off pulling image "{c.image}"',
                )
                events.container_event(
                    cluster, pod, c, ps.node, "Warning", "Failed", "Error: ImagePullBackOff"
                )
                changed = True
        if changed:
            kubelet.publish_status(cluster, ps)
        now = cluster.now()
    await cluster.sleep(max(0.0, wake - now))


def pull_outcome(
    cluster: Cluster, node_state: NodeState, image: Image, ref: str, pod: dict[str, Any]
) -> str | None:
    if (
        image.platforms is not None
        and nodes.node_arch(cluster, node_state.name) not in image.platforms
    ):
        return "platform"
    if image.not_found:
        host = img.split_ref(ref)[0].split("/", 1)[0]
        if host in cluster.scenario.defaults.token_auth_registries:
            return "insufficientScope"
        return "notFound"
    if image.private_secret is not None:
        names = {s.get("name") for s in pod["spec"].get("imagePullSecrets") or []}
        if (
            image.private_secret not in names
            or cluster.store.get("Secret", pod["metadata"]["namespace"], image.private_secret)
            is None
        ):
            return "unauthorized"
    if image.rate_limited:
        return "tooManyRequests"
    if image.flaky is not None and node_state.flaky_failures[ref] < image.flaky.failures:
        return image.flaky.error  # counted once the attempt completes
    return None


def pull_seconds(cluster: Cluster, node_state: NodeState, image: Image, present: bool) -> float:
    defaults = cluster.scenario.defaults
    jitter = 1 + cluster.rng.uniform(-defaults.pull_jitter, defaults.pull_jitter)
    if present:
        return defaults.pull_overhead_seconds * jitter
    duration = image.pull_seconds if image.pull_seconds is not None else defaults.pull_seconds
    if isinstance(duration, int | float):
        return float(duration) * jitter
    if duration is not None:
        return cluster.rng.lognormvariate(math.log(duration.median), duration.sigma)
    return (defaults.pull_overhead_seconds + image.size / node_state.bandwidth) * jitter


async def ensure_image(
    cluster: Cluster, ps: PodState, node_state: NodeState, c: ContainerState, pod: dict[str, Any]
) -> bool:
    """EnsureImageExists: True when the image is on the node (pulled now or before)."""
    ref = img.normalize(c.image)
    present = ref in node_state.images
    if c.policy == "Never" or (present and c.policy == "IfNotPresent"):
        if present:
            events.container_event(
                cluster,
                pod,
                c,
                node_state.name,
                "Normal",
                "Pulled",
                f'Container image "{c.image}" already present on machine',
            )
            c.pulled = True
            return True
        c.reason = "ErrImageNeverPull"
        c.message = f'Container image "{c.image}" is not present with pull policy of Never'
        c.backoff_until = float("inf")
        events.container_event(
            cluster, pod, c, node_state.name, "Warning", "ErrImageNeverPull", c.message
        )
        kubelet.publish_status(cluster, ps)
        return False
    image = cluster.scenario.image(c.image)
    registry = registrypull.registry_for(cluster, c.image)
    queued = cluster.now()
    events.container_event(
        cluster, pod, c, node_state.name, "Normal", "Pulling", f'Pulling image "{c.image}"'
    )
    async with node_state.pull_lock:
        node_state.pulling += 1
        cluster.max_parallel_pulls[node_state.name] = max(
            cluster.max_parallel_pulls.get(node_state.name, 0), node_state.pulling
        )
        try:
            started = cluster.now()
            real: registrypull.Pulled | None = None
            if registry is not None:  # the registry's own answers decide (registrypull.py)
                real = await registrypull.pull(cluster, registry, node_state, c.image, pod)
                outcome = "registry" if real.error else None
            else:
                outcome = pull_outcome(cluster, node_state, image, ref, pod)
            took = (
                0.1 + cluster.rng.random() * 0.2
                if outcome
                else pull_seconds(cluster, node_state, image, present)
            )
            finished = await sleep_unless_down(cluster, node_state, took)
        finally:
            node_state.pulling -= 1
    if ps.key not in cluster.pods:
        return False
    if not finished:
        # The node went down mid-pull: nothing landed. Its kubelet starts over once it is back.
        await node_state.ready.wait()
        return await ensure_image(cluster, ps, node_state, c, pod)
    if outcome is not None and image.flaky is not None and outcome == image.flaky.error:
        node_state.flaky_failures[ref] += 1
    if outcome is not None:
        error = real.error if real and real.error else img.pull_error(outcome, c.image)
        cluster.pull_failures[(node_state.name, c.image)] += 1
        c.backoff = (
            KUBELET_BACKOFF_INITIAL if not c.backoff else min(c.backoff * 2, KUBELET_BACKOFF_MAX)
        )
        c.backoff_until = cluster.now() + c.backoff
        c.reason, c.message, c.last_error = "ErrImagePull", error, error
        c.backoff_reported = False
        events.container_event(
            cluster,
            pod,
            c,
            node_state.name,
            "Warning",
            "Failed",
            f'Failed to pull image "{c.image}": {error}',
        )
        events.container_event(
            cluster, pod, c, node_state.name, "Warning", "Failed", "Error: ErrImagePull"
        )
        kubelet.publish_status(cluster, ps)
        return False
    size = real.size if real else image.size
    node_state.images.pop(ref, None)
    node_state.images[ref] = size
    if real:
        node_state.digests[ref] = c.image_digest = real.digest
    cluster.pull_counts[(node_state.name, c.image)] += 1
    cluster.first_pulled.setdefault((node_state.name, c.image), cluster.now())
    nodes.node_status_soon(cluster, node_state)
    done = cluster.now()
    c.pulled = True
    c.reason, c.message = "ContainerCreating", None
    events.container_event(
        cluster,
        pod,
        c,
        node_state.name,
        "Normal",
        "Pulled",
        f'Successfully pulled image "{c.image}" in {go_duration(done - started)} '
        f"({go_duration(done - queued)} including waiting). Image size: {size} bytes.",
    )
    return True


async def sleep_unless_down(cluster: Cluster, node_state: NodeState, sim_seconds: float) -> bool:
    """Sleep; False as soon as the node goes NotReady (a dead node finishes nothing)."""
    if not node_state.ready.is_set():
        return False
    sleeper = asyncio.ensure_future(cluster.sleep(sim_seconds))
    down = asyncio.ensure_future(node_state.down.wait())
    try:
        await asyncio.wait({sleeper, down}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        down.cancel()
    return node_state.ready.is_set() and sleeper.done() and not sleeper.cancelled()


def go_duration(seconds: float) -> str:
    """Go's time.Duration formatting, as in the kubelet's Pulled message."""
    if seconds < 1:
        return f"{seconds * 1000:.3f}".rstrip("0").rstrip(".") + "ms"
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    m, sec = divmod(seconds, 60)
    return f"{int(m)}m" + f"{sec:.3f}".rstrip("0").rstrip(".") + "s"
