"""The node explains a stuck pod: NodeGone when it was deleted, NodeNotReady when it went down."""

from __future__ import annotations

from datetime import UTC, datetime

from activities.classify import Verdict
from activities.errors import KubernetesError, KubernetesNotFound
from activities.kube import Kube
from activities.nodewatch import NodeWatch, ready_of
from common.engine import trim
from common.models import FailureReason


async def node_verdict(
    kube: Kube, nodes: NodeWatch, node: str, *, grace: float, force: bool = False
) -> Verdict | None:
    """NodeGone if the node was deleted; NodeNotReady if its Ready condition has been false for
    `grace` seconds, measured from the condition's lastTransitionTime (a brief flap fails
    nothing). `force` skips the grace: the pod is failing anyway, and the node explains why.
    Read from the shared node watch; one GET only before it has synced."""
    if nodes.synced:
        if nodes.gone(node):
            return node_gone()
        state = nodes.get(node)
    elif force:
        try:
            obj = await kube.call("get", "nodes", kube.core.read_node, node)
        except KubernetesNotFound:
            return node_gone()
        except KubernetesError:
            return None
        state = ready_of(obj)
    else:
        return None
    if state is None or state.ready:
        return None
    since = state.since
    if not force and (since is None or (datetime.now(UTC) - since).total_seconds() < grace):
        return None
    return Verdict(
        done=True,
        reason=FailureReason.NODE_NOT_READY,
        message=trim(f"node went NotReady: {state.message}".rstrip(": ")),
    )


def node_gone() -> Verdict:
    return Verdict(done=True, reason=FailureReason.NODE_GONE, message="node was deleted mid-task")
