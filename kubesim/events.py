"""Events: the API server's Event objects, deduplicated by (object, field, reason, message, type)
as the client-go event recorder does (count and lastTimestamp go up), oldest dropped first.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from kubesim import (
    kubelet,
)
from kubesim.state import ContainerState, container_field_path
from kubesim.store import now_iso

if TYPE_CHECKING:
    from kubesim.cluster import Cluster

# A memory bound for long benchmark runs: beyond it the oldest Events go first (a real cluster
# expires them after an hour, kube-apiserver `--event-ttl`).
MAX_EVENTS = 100000


def record_event(
    cluster: Cluster,
    obj: dict[str, Any],
    type_: str,
    reason: str,
    message: str,
    *,
    component: str,
    host: str | None = None,
    field_path: str | None = None,
) -> None:
    if component == "kubelet" and host and not kubelet.reachable(cluster, host):
        return  # a partitioned kubelet's events never reach the API server
    md = obj["metadata"]
    namespace = md.get("namespace") or "default"
    key = (md["uid"], field_path or "", reason, message, type_)
    ts = now_iso()
    existing = cluster.event_index.get(key)
    if existing is not None:
        e = cluster.store.get("Event", *existing)
        if e is not None:
            e.obj["count"] += 1
            e.obj["lastTimestamp"] = ts
            cluster.store.update("Event", e.obj)
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
        "metadata": {"name": name, "namespace": namespace},
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
    cluster.store.create("Event", ev)
    cluster.event_index[key] = (namespace, name)
    cluster.event_order.append((namespace, name))
    while len(cluster.event_order) > MAX_EVENTS:
        old = cluster.event_order.popleft()
        cluster.store.delete("Event", *old)
    if len(cluster.event_index) > 2 * MAX_EVENTS:
        cluster.event_index = {
            k: v for k, v in cluster.event_index.items() if cluster.store.get("Event", *v)
        }


def container_event(
    cluster: Cluster,
    pod: dict[str, Any],
    c: ContainerState,
    host: str | None,
    type_: str,
    reason: str,
    message: str,
) -> None:
    """The kubelet's event about one container of `pod` (fieldPath names the container)."""
    record_event(
        cluster,
        pod,
        type_,
        reason,
        message,
        component="kubelet",
        host=host,
        field_path=container_field_path(c),
    )
