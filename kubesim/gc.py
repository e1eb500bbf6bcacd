"""Deletion and the garbage collector: graceful pod deletion, and Job deletion with the Orphan,
Background and Foreground propagation policies (dependents found through ownerReferences).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from kubesim import (
    termination,
)
from kubesim.store import Entry, now_iso
from kubesim.validation import DEFAULT_TERMINATION_GRACE_SECONDS

if TYPE_CHECKING:
    from kubesim.cluster import Cluster


def delete_pod(
    cluster: Cluster, namespace: str, name: str, grace: int | None = None
) -> Entry | None:
    """Graceful deletion: mark, let the kubelet stop the containers, then remove."""
    e = cluster.store.get("Pod", namespace, name)
    if e is None:
        return None
    pod = e.obj
    ps = cluster.pods.get((namespace, name))
    if grace is None:
        grace = int(
            pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_SECONDS)
        )
    bound = bool(pod["spec"].get("nodeName")) and ps is not None and ps.node in cluster.nodes
    if grace == 0 or not bound:
        return remove_pod(cluster, namespace, name)
    if pod["metadata"].get("deletionTimestamp"):
        return e
    assert ps is not None
    ps.terminating = True
    pod["metadata"]["deletionTimestamp"] = now_iso()
    pod["metadata"]["deletionGracePeriodSeconds"] = grace
    entry = cluster.store.update("Pod", pod)
    termination.start(cluster, ps, grace)
    return entry


def remove_pod(cluster: Cluster, namespace: str, name: str) -> Entry | None:
    ps = cluster.pods.pop((namespace, name), None)
    if ps is not None:
        if ps.task is not None:
            ps.task.cancel()
        if ps.term_task is not None and ps.term_task is not asyncio.current_task():
            ps.term_task.cancel()
        eviction = cluster.evictions.pop(ps.key, None)
        if eviction is not None:
            eviction.cancel()
        for t in list(ps.tasks):
            t.cancel()
        if ps.node and ps.node in cluster.nodes:
            cluster.nodes[ps.node].pods.discard(ps.key)
        cluster.unschedulable.discard(ps.key)
    entry = cluster.store.delete("Pod", namespace, name)
    if entry is not None:
        for o in entry.obj["metadata"].get("ownerReferences", []):
            uid = o.get("uid", "")
            owned = cluster.owned.get(uid)
            if owned is not None:
                owned.discard((namespace, name))
                if not owned:
                    del cluster.owned[uid]
            if uid in cluster.foreground:
                await_dependents(cluster, *cluster.foreground[uid], uid)
    return entry


def delete_job(
    cluster: Cluster, namespace: str, name: str, policy: str | None
) -> tuple[Entry | None, bool]:
    """Returns (entry, still_present). Default policy for batch/v1 is Orphan."""
    e = cluster.store.get("Job", namespace, name)
    if e is None:
        return None, False
    job = e.obj
    uid = job["metadata"]["uid"]
    js = cluster.jobs.get(uid)
    policy = policy or "Orphan"
    dependents = [
        e
        for key in sorted(cluster.owned.get(uid, ()))
        if (e := cluster.store.get("Pod", *key)) is not None
    ]
    if js is not None:
        for t in js.timers:
            t.cancel()
        js.finished = True
    if policy == "Foreground" and dependents:
        job["metadata"]["deletionTimestamp"] = now_iso()
        job["metadata"]["deletionGracePeriodSeconds"] = 0
        job["metadata"]["finalizers"] = ["foregroundDeletion"]
        entry = cluster.store.update("Job", job)
        for p in dependents:
            delete_pod(cluster, p.obj["metadata"]["namespace"], p.obj["metadata"]["name"])
        cluster.foreground[uid] = (namespace, name)
        await_dependents(cluster, namespace, name, uid)
        return entry, True
    if policy == "Orphan":
        cluster.owned.pop(uid, None)
        for p in dependents:
            refs = [o for o in p.obj["metadata"]["ownerReferences"] if o.get("uid") != uid]
            if refs:
                p.obj["metadata"]["ownerReferences"] = refs
            else:
                p.obj["metadata"].pop("ownerReferences")
            cluster.store.update("Pod", p.obj)
    gone = cluster.store.delete("Job", namespace, name)
    cluster.jobs.pop(uid, None)
    if policy == "Background":
        for p in dependents:
            delete_pod(cluster, p.obj["metadata"]["namespace"], p.obj["metadata"]["name"])
    return gone, False


def await_dependents(cluster: Cluster, namespace: str, name: str, uid: str) -> None:
    if cluster.owned.get(uid):
        return  # _remove_pod calls again as each dependent goes
    cluster.foreground.pop(uid, None)
    e = cluster.store.get("Job", namespace, name)
    if e is not None and e.obj["metadata"]["uid"] == uid:
        cluster.store.delete("Job", namespace, name)
    cluster.jobs.pop(uid, None)
