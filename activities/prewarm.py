"""The engine's activities: list nodes, prewarm one batch (or rolling window), clean up.

Only this package talks to Kubernetes. Every activity heartbeats; the batch activity
(`activities/batch.py`, `activities/outcomes.py`) streams node outcomes to the workflow by
signal (at most one a second) so progress moves live, and it is idempotent on retry: Jobs have
deterministic names and are adopted, and nodes already reported (kept in the heartbeat
details) are never pulled again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from temporalio import activity

from activities.batch import BatchRun
from activities.errors import KubernetesError, to_application_error
from activities.follow import FollowActivities
from activities.jobspec import task_selector
from activities.kube import Kube
from activities.nodewatch import NodeWatch
from activities.selection import node_has_images, select_nodes
from common.engine import (
    ACTIVITY_CLEANUP,
    ACTIVITY_LIST_NODES,
    ACTIVITY_PREWARM_NODES,
    CleanupInput,
    CleanupResult,
    ListNodesInput,
    MissingNodes,
    NodeSelection,
    PrewarmNodesInput,
    PrewarmNodesResult,
)
from common.models import ImagePullPolicy, SkippedNodeDetail, SkipReason, TaskSpec
from common.observability import NODES_PROCESSED
from common.preflight import ResolvedImage
from common.settings import Settings

log = logging.getLogger(__name__)

SKIPPED_LISTED = 1000  # more skipped nodes than this are listed GROUP_SIZE to an entry
MISSING_LISTED = 100  # more missing nodeNames than this are reported GROUP_SIZE to a range
GROUP_SIZE = 1000


class PrewarmActivities:
    """Activities bound to one Kubernetes connection and the worker's settings."""

    def __init__(self, kube: Kube, settings: Settings) -> None:
        self.kube = kube
        self.settings = settings
        self.nodes = NodeWatch(kube)  # one node watch for every batch this worker runs
        self.follow = FollowActivities(kube, settings, self.nodes)

    @property
    def all(self) -> list[Any]:
        return [self.list_nodes, self.prewarm_nodes, self.cleanup_task, self.follow.follow_nodes]

    # --- list_nodes ----------------------------------------------------------------------

    @activity.defn(name=ACTIVITY_LIST_NODES)
    async def list_nodes(self, listing: ListNodesInput) -> NodeSelection:
        """One paginated node listing.

        No namespace check here: the least-privilege Role has no `get namespaces`. A missing
        K8S_NAMESPACE shows on the first Job create (404 for kind namespaces), and fails the
        task there with the same clear message.
        """
        extra = {"taskId": listing.task_id}
        kube = self.kube
        selector = ",".join(f"{k}={v}" for k, v in sorted(listing.spec.node_selector.items()))
        items: list[dict[str, Any]] = []
        kw: dict[str, Any] = {"label_selector": selector} if selector else {}
        pages = kube.list_pages("nodes", kube.core.list_node, **kw)
        try:
            async for page in pages:
                items += [
                    slim_node(n, listing.spec, listing.resolved, pin_digests=listing.pin_digests)
                    for n in page.get("items") or []
                ]
                activity.heartbeat(len(items))
        except KubernetesError as err:
            raise to_application_error(err, "listing nodes") from None
        listed = len(items)
        selection = bound_missing(
            bound_skipped(
                select_nodes(items, listing.spec, listing.resolved, pin_digests=listing.pin_digests)
            )
        )
        selection.resource_version = pages.resource_version  # the first page's: one snapshot
        del items
        NODES_PROCESSED.labels("skipped").inc(selection.skipped_count or len(selection.skipped))
        NODES_PROCESSED.labels("warm").inc(selection.warm)
        log.info(
            "listed %d nodes: %d to pull, %d warm, %d skipped",
            listed,
            len(selection.targets),
            selection.warm,
            selection.skipped_count or len(selection.skipped),
            extra=extra,
        )
        return selection

    # --- prewarm_nodes -------------------------------------------------------------------

    @activity.defn(name=ACTIVITY_PREWARM_NODES)
    async def prewarm_nodes(self, batch: PrewarmNodesInput) -> PrewarmNodesResult:
        return await BatchRun(self.kube, self.settings, batch, self.nodes).run()

    # --- cleanup_task --------------------------------------------------------------------

    @activity.defn(name=ACTIVITY_CLEANUP)
    async def cleanup_task(self, cleanup: CleanupInput) -> CleanupResult:
        """Delete every Job of the task with background propagation; the garbage collector
        removes their pods. Pods are only counted, never deleted: the least-privilege Role
        grants no pod `delete` (deploy/), and background propagation already covers them.
        """
        kube, ns, selector = self.kube, self.kube.namespace, task_selector(cleanup.task_id)
        result = CleanupResult()
        try:
            jobs = await kube.call(
                "list", "jobs", kube.batch.list_namespaced_job, ns, label_selector=selector
            )
            result.jobs_deleted = len(jobs.get("items") or [])
            if result.jobs_deleted:
                await kube.call(
                    "deletecollection",
                    "jobs",
                    kube.batch.delete_collection_namespaced_job,
                    ns,
                    label_selector=selector,
                    propagation_policy="Background",
                )
            activity.heartbeat("jobs")
            pods = await kube.call(
                "list", "pods", kube.core.list_namespaced_pod, ns, label_selector=selector
            )
            result.pods_awaiting_gc = len(pods.get("items") or [])
        except KubernetesError as err:
            raise to_application_error(err, "cleaning up the task's Jobs") from None
        log.info(
            "clean-up deleted %d jobs; %d pods left to the garbage collector",
            result.jobs_deleted,
            result.pods_awaiting_gc,
            extra={"taskId": cleanup.task_id},
        )
        return result


__all__ = ["PrewarmActivities"]


def slim_node(
    node: dict[str, Any],
    spec: TaskSpec,
    resolved: Sequence[ResolvedImage] = (),
    *,
    pin_digests: bool = False,
) -> dict[str, Any]:
    """The fields node selection reads, and nothing else (a Node is tens of KiB of JSON).

    `status.images` (up to 50 entries, each with several names) becomes one entry naming the
    task's images when the node has them all (by name or by resolved digest), else nothing:
    `node_has_images` gives the same answer on the slim node, and the listing holds a few
    hundred bytes per node. The platform and disk checks read the arch label (kept with the
    labels), `nodeInfo`, the DiskPressure condition and allocatable ephemeral storage.
    """
    meta, nspec = node.get("metadata") or {}, node.get("spec") or {}
    status = node.get("status") or {}
    info = status.get("nodeInfo") or {}
    warm = spec.image_pull_policy == ImagePullPolicy.IF_NOT_PRESENT and node_has_images(
        node, list(spec.images), resolved, pin_digests=pin_digests
    )
    storage = (status.get("allocatable") or {}).get("ephemeral-storage")
    return {
        "metadata": {"name": meta.get("name", ""), "labels": meta.get("labels") or {}},
        "spec": {
            "unschedulable": bool(nspec.get("unschedulable")),
            "taints": [
                {k: t.get(k) for k in ("key", "value", "effect")} for t in nspec.get("taints") or []
            ],
        },
        "status": {
            "conditions": [
                {k: c.get(k) for k in ("type", "status", "reason", "message")}
                for c in status.get("conditions") or []
                if c.get("type") == "Ready"
                or (c.get("type") == "DiskPressure" and c.get("status") == "True")
            ],
            "nodeInfo": {
                "operatingSystem": info.get("operatingSystem"),
                "architecture": info.get("architecture"),
            },
            "allocatable": {"ephemeral-storage": storage} if storage is not None else {},
            "images": [{"names": list(spec.images)}] if warm else [],
        },
    }


def bound_skipped(selection: NodeSelection) -> NodeSelection:
    """Past SKIPPED_LISTED skipped nodes, list them GROUP_SIZE to an entry per reason (the
    entry names them all), so the listing's result stays small at 10,000 nodes."""
    if len(selection.skipped) <= SKIPPED_LISTED:
        return selection
    by_reason: dict[SkipReason, list[SkippedNodeDetail]] = {}
    for d in selection.skipped:
        by_reason.setdefault(d.reason, []).append(d)
    grouped: list[SkippedNodeDetail] = []
    for reason, details in by_reason.items():
        for i in range(0, len(details), GROUP_SIZE):
            chunk = details[i : i + GROUP_SIZE]
            names = " ".join(d.node_name for d in chunk)
            grouped.append(
                SkippedNodeDetail(
                    node_name=f"{chunk[0].node_name} (+{len(chunk) - 1} more)",
                    reason=reason,
                    message=f"{chunk[0].message}; the same reason on: {names}",
                )
            )
    return selection.model_copy(
        update={
            "skipped": grouped,
            "skipped_count": len(selection.skipped),
            "skipped_by_reason": {r.value: len(ds) for r, ds in by_reason.items()},
        }
    )


def bound_missing(selection: NodeSelection) -> NodeSelection:
    """Past MISSING_LISTED missing nodeNames, report them GROUP_SIZE to a sorted range: they
    are the client's own names, and listing 10,000 of them would double the result."""
    if len(selection.missing) <= MISSING_LISTED:
        return selection
    names = sorted(selection.missing)
    groups = [
        MissingNodes(first=chunk[0], last=chunk[-1], count=len(chunk))
        for chunk in (names[i : i + GROUP_SIZE] for i in range(0, len(names), GROUP_SIZE))
    ]
    return selection.model_copy(update={"missing": [], "missing_groups": groups})
