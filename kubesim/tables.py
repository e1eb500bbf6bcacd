"""Server-side printing (meta.k8s.io/v1 Table), so `kubectl get` shows its usual columns."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Column = tuple[str, str, str, int]  # name, type, format, priority


def _age(ts: str | None) -> str:
    """kubectl's HumanDuration."""
    if not ts:
        return "<unknown>"
    try:
        then = datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    s = int((datetime.now(UTC) - then).total_seconds())
    if s < -1:
        return "<invalid>"
    s = max(s, 0)
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def _node_row(o: dict[str, Any]) -> list[Any]:
    st = o.get("status", {})
    ready = next((c for c in st.get("conditions", []) if c["type"] == "Ready"), None)
    status = "Ready" if ready and ready["status"] == "True" else "NotReady"
    if o.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = sorted(
        k.split("/", 1)[1]
        for k in o["metadata"].get("labels", {})
        if k.startswith("node-role.kubernetes.io/")
    )
    info = st.get("nodeInfo", {})
    addr = {a["type"]: a["address"] for a in st.get("addresses", [])}
    return [
        o["metadata"]["name"],
        status,
        ",".join(roles) or "<none>",
        _age(o["metadata"].get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        addr.get("InternalIP", "<none>"),
        addr.get("ExternalIP", "<none>"),
        info.get("osImage", ""),
        info.get("kernelVersion", ""),
        info.get("containerRuntimeVersion", ""),
    ]


def _pod_status(o: dict[str, Any]) -> tuple[str, int, int, int]:
    """kubectl's pod STATUS column logic (printPod), READY counts and restarts."""
    st = o.get("status", {})
    reason = st.get("reason") or st.get("phase") or "Pending"
    restarts = 0
    inits = st.get("initContainerStatuses") or []
    n_init = len(o.get("spec", {}).get("initContainers") or [])
    initializing = False
    for i, c in enumerate(inits):
        restarts += c.get("restartCount", 0)
        state = c.get("state", {})
        term = state.get("terminated")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + (term.get("reason") or f"ExitCode:{term.get('exitCode')}")
        elif (
            state.get("waiting", {}).get("reason")
            and state["waiting"]["reason"] != "PodInitializing"
        ):
            reason = "Init:" + state["waiting"]["reason"]
        else:
            reason = f"Init:{i}/{n_init}"
        initializing = True
        break
    ready = 0
    total = len(o.get("spec", {}).get("containers") or [])
    if not initializing:
        has_running = False
        for c in reversed(st.get("containerStatuses") or []):
            restarts += c.get("restartCount", 0)
            state = c.get("state", {})
            if state.get("waiting", {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif state.get("terminated", {}).get("reason"):
                reason = state["terminated"]["reason"]
            elif state.get("terminated"):
                reason = f"ExitCode:{state['terminated'].get('exitCode')}"
            elif state.get("running") and c.get("ready"):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running"
    if o["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return reason, ready, total, restarts


def _pod_row(o: dict[str, Any]) -> list[Any]:
    reason, ready, total, restarts = _pod_status(o)
    st = o.get("status", {})
    return [
        o["metadata"]["name"],
        f"{ready}/{total}",
        reason,
        str(restarts),
        _age(o["metadata"].get("creationTimestamp")),
        st.get("podIP") or "<none>",
        o.get("spec", {}).get("nodeName") or "<none>",
        st.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


def _job_row(o: dict[str, Any]) -> list[Any]:
    spec, st = o.get("spec", {}), o.get("status", {})
    conds = {c["type"]: c["status"] for c in st.get("conditions", [])}
    if o["metadata"].get("deletionTimestamp"):
        status = "Terminating"
    elif conds.get("Complete") == "True":
        status = "Complete"
    elif conds.get("Failed") == "True":
        status = "Failed"
    elif spec.get("suspend"):
        status = "Suspended"
    else:
        status = "Running"
    completions = f"{st.get('succeeded', 0)}/{spec.get('completions', 1)}"
    duration = ""
    if st.get("startTime"):
        start = st["startTime"]
        if st.get("completionTime"):
            a = datetime.strptime(start[:19], "%Y-%m-%dT%H:%M:%S")
            b = datetime.strptime(st["completionTime"][:19], "%Y-%m-%dT%H:%M:%S")
            duration = f"{int((b - a).total_seconds())}s"
        else:
            duration = _age(start)
    cs = spec.get("template", {}).get("spec", {}).get("containers", [])
    sel = ",".join(
        f"{k}={v}" for k, v in (spec.get("selector", {}).get("matchLabels") or {}).items()
    )
    return [
        o["metadata"]["name"],
        status,
        completions,
        duration,
        _age(o["metadata"].get("creationTimestamp")),
        ",".join(c.get("name", "") for c in cs),
        ",".join(c.get("image", "") for c in cs),
        sel or "<none>",
    ]


def _event_row(o: dict[str, Any]) -> list[Any]:
    io = o.get("involvedObject", {})
    obj = f"{(io.get('kind') or '').lower()}/{io.get('name', '')}"
    src = o.get("source", {})
    return [
        _age(o.get("lastTimestamp") or o.get("eventTime")),
        o.get("type", ""),
        o.get("reason", ""),
        obj,
        io.get("fieldPath", ""),
        ", ".join(v for v in (src.get("component"), src.get("host")) if v),
        o.get("message", ""),
        _age(o.get("firstTimestamp")),
        str(o.get("count", 1)),
        o["metadata"]["name"],
    ]


def _ns_row(o: dict[str, Any]) -> list[Any]:
    return [
        o["metadata"]["name"],
        o.get("status", {}).get("phase", "Active"),
        _age(o["metadata"].get("creationTimestamp")),
    ]


def _secret_row(o: dict[str, Any]) -> list[Any]:
    return [
        o["metadata"]["name"],
        o.get("type", "Opaque"),
        str(len(o.get("data") or {})),
        _age(o["metadata"].get("creationTimestamp")),
    ]


TABLES: dict[str, tuple[list[Column], Callable[[dict[str, Any]], list[Any]]]] = {
    "Node": (
        [
            ("Name", "string", "name", 0),
            ("Status", "string", "", 0),
            ("Roles", "string", "", 0),
            ("Age", "string", "", 0),
            ("Version", "string", "", 0),
            ("Internal-IP", "string", "", 1),
            ("External-IP", "string", "", 1),
            ("OS-Image", "string", "", 1),
            ("Kernel-Version", "string", "", 1),
            ("Container-Runtime", "string", "", 1),
        ],
        _node_row,
    ),
    "Pod": (
        [
            ("Name", "string", "name", 0),
            ("Ready", "string", "", 0),
            ("Status", "string", "", 0),
            ("Restarts", "string", "", 0),
            ("Age", "string", "", 0),
            ("IP", "string", "", 1),
            ("Node", "string", "", 1),
            ("Nominated Node", "string", "", 1),
            ("Readiness Gates", "string", "", 1),
        ],
        _pod_row,
    ),
    "Job": (
        [
            ("Name", "string", "name", 0),
            ("Status", "string", "", 0),
            ("Completions", "string", "", 0),
            ("Duration", "string", "", 0),
            ("Age", "string", "", 0),
            ("Containers", "string", "", 1),
            ("Images", "string", "", 1),
            ("Selector", "string", "", 1),
        ],
        _job_row,
    ),
    "Event": (
        [
            ("Last Seen", "string", "", 0),
            ("Type", "string", "", 0),
            ("Reason", "string", "", 0),
            ("Object", "string", "", 0),
            ("Subobject", "string", "", 1),
            ("Source", "string", "", 1),
            ("Message", "string", "", 0),
            ("First Seen", "string", "", 1),
            ("Count", "string", "", 1),
            ("Name", "string", "name", 1),
        ],
        _event_row,
    ),
    "Namespace": (
        [("Name", "string", "name", 0), ("Status", "string", "", 0), ("Age", "string", "", 0)],
        _ns_row,
    ),
    "Secret": (
        [
            ("Name", "string", "name", 0),
            ("Type", "string", "", 0),
            ("Data", "string", "", 0),
            ("Age", "string", "", 0),
        ],
        _secret_row,
    ),
}


def table(
    kind: str, api_version: str, objs: list[dict[str, Any]], meta: dict[str, Any], include: str
) -> dict[str, Any]:
    cols, row_fn = TABLES[kind]
    rows = []
    for o in objs:
        if include == "Object":
            embedded: Any = o
        elif include == "None":
            embedded = None
        else:
            embedded = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            }
        row: dict[str, Any] = {"cells": row_fn(o)}
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": [
            {"name": n, "type": t, "format": f, "description": n, "priority": p}
            for n, t, f, p in cols
        ],
        "rows": rows,
    }
