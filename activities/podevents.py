"""A pod's Events explain what its status hides: the generic image pull back-off message."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from activities.classify import Verdict, classify_pod
from activities.errors import KubernetesError
from activities.kube import Kube


async def verdict_from_events(
    kube: Kube, pod: dict[str, Any], verdict: Verdict, *, now: datetime, grace: float
) -> Verdict:
    """The pod classified again with its Events (one list request); `verdict` when the
    request fails or the pod has no Events."""
    name = (pod.get("metadata") or {}).get("name", "")
    try:
        page = await kube.call(
            "list",
            "events",
            kube.core.list_namespaced_event,
            kube.namespace,
            field_selector=f"involvedObject.name={name}",
        )
    except KubernetesError:
        return verdict
    events = [
        e for e in page.get("items") or [] if (e.get("involvedObject") or {}).get("name") == name
    ]
    if not events:
        return verdict
    return classify_pod(pod, now=now, unschedulable_grace=grace, events=events)
