"""The scheduler: a pod's ContainerStates on creation, node filtering (nodeName, nodeSelector,
affinity, taints and tolerations), binding, and the retry of unschedulable pods.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import TYPE_CHECKING, Any

from kubesim import (
    events,
    kubelet,
    node_lifecycle,
)
from kubesim.state import (
    ContainerState,
    PodState,
)
from kubesim.store import Entry, now_iso

if TYPE_CHECKING:
    from kubesim.cluster import Cluster


def pod_created(cluster: Cluster, entry: Entry) -> None:
    """Called after a Pod object is stored (API create or Job controller)."""
    pod = entry.obj
    md = pod["metadata"]
    key = (md["namespace"], md["name"])
    spec = pod["spec"]
    containers = [
        ContainerState(
            c["name"],
            c["image"],
            init,
            c.get("imagePullPolicy", "IfNotPresent"),
            list(c.get("command") or []),
            [m.get("mountPath", "") for m in c.get("volumeMounts") or []],
            reason="PodInitializing"
            if (spec.get("initContainers") and not init)
            else ("PodInitializing" if init else "ContainerCreating"),
        )
        for init, lst in ((True, spec.get("initContainers") or []), (False, spec["containers"]))
        for c in lst
    ]
    owner = next((o for o in md.get("ownerReferences", []) if o.get("kind") == "Job"), None)
    ps = PodState(key, md["uid"], containers=containers, job_uid=owner["uid"] if owner else None)
    cluster.pods[key] = ps
    for o in md.get("ownerReferences", []):
        cluster.owned.setdefault(o.get("uid", ""), set()).add(key)
    if pod.get("status", {}).get("phase") != "Pending":
        pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        cluster.store.update("Pod", pod)
    schedule(cluster, ps)


def schedule(cluster: Cluster, ps: PodState) -> None:
    pod = cluster.pod_object(ps)
    if pod is None or ps.terminating:
        return
    spec = pod["spec"]
    if spec.get("nodeName"):
        bind(cluster, ps, pod, spec["nodeName"], event=False)
        return
    node_selector = spec.get("nodeSelector") or {}
    host = node_selector.get("kubernetes.io/hostname") or pinned_node(spec)
    candidates = [host] if host is not None else list(cluster.nodes)
    reasons: Counter[str] = Counter()
    if host is not None:
        reasons["node(s) didn't match Pod's node affinity/selector"] += len(cluster.nodes) - (
            1 if host in cluster.nodes else 0
        )
    fits: list[str] = []
    for name in candidates:
        if name not in cluster.nodes:
            continue
        e = cluster.store.get("Node", None, name)
        assert e is not None
        why = filter_node(spec, e.obj)
        if why is None:
            fits.append(name)
        else:
            reasons[why] += 1
    if fits:
        best = min(fits, key=lambda n: (len(cluster.nodes[n].pods), cluster.rng.random()))
        cluster.unschedulable.discard(ps.key)
        bind(cluster, ps, pod, best, event=True)
        return
    total = len(cluster.nodes)
    detail = ", ".join(sorted(f"{n} {r}" for r, n in reasons.items()))
    message = (
        f"0/{total} nodes are available: {detail}. preemption: 0/{total} nodes are available: "
        f"{total} Preemption is not helpful for scheduling."
    )
    first = ps.key not in cluster.unschedulable
    cluster.unschedulable.add(ps.key)
    cond = {
        "type": "PodScheduled",
        "status": "False",
        "lastProbeTime": None,
        "lastTransitionTime": now_iso(),
        "reason": "Unschedulable",
        "message": message,
    }
    old = pod["status"].get("conditions")
    if old != [cond] and (first or (old and old[0].get("message") != message)):
        pod["status"]["conditions"] = [cond]
        cluster.store.update("Pod", pod)
        events.record_event(
            cluster, pod, "Warning", "FailedScheduling", message, component="default-scheduler"
        )


def retry_unschedulable(cluster: Cluster) -> None:
    for key in list(cluster.unschedulable):
        ps = cluster.pods.get(key)
        if ps is None:
            cluster.unschedulable.discard(key)
        else:
            schedule(cluster, ps)


def bind(cluster: Cluster, ps: PodState, pod: dict[str, Any], node: str, *, event: bool) -> None:
    ps.node = node
    pod["spec"]["nodeName"] = node
    ts = now_iso()
    pod["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": ts,
        }
    ]
    cluster.store.update("Pod", pod)
    if event:
        events.record_event(
            cluster,
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {ps.key[0]}/{ps.key[1]} to {node}",
            component="default-scheduler",
        )
    node_state = cluster.nodes.get(node)
    if node_state is None:
        return  # bound to a node that does not exist: stays Pending, as on a real cluster
    node_state.pods.add(ps.key)
    ps.task = asyncio.get_running_loop().create_task(kubelet.run_pod(cluster, ps, node_state))
    node_lifecycle.pod_on_node(cluster, ps)


def tolerates(tols: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for t in tols:
        if t.get("effect") and t["effect"] != taint["effect"]:
            continue
        if t.get("operator", "Equal") == "Exists":
            if not t.get("key") or t["key"] == taint["key"]:
                return True
        elif t.get("key") == taint["key"] and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _match_expr(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator"), expr.get("values") or []
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels and values:
        with contextlib.suppress(ValueError):
            a, b = int(labels[key]), int(values[0])
            return a > b if op == "Gt" else a < b
    return False


def pinned_node(spec: dict[str, Any]) -> str | None:
    """The one node a required `matchFields metadata.name In [node]` term allows (a DaemonSet
    pod's, or an IPS pull pod's), so only that node is filtered, as the scheduler's NodeAffinity
    PreFilter narrows the candidates (pkg/scheduler/framework/plugins/nodeaffinity, PreFilter).
    _affinity_ok still checks the whole affinity on it."""
    req = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    terms = (req or {}).get("nodeSelectorTerms") or []
    names: set[str] = set()
    for term in terms:
        fields = [f for f in term.get("matchFields") or [] if f.get("key") == "metadata.name"]
        if len(fields) != 1 or fields[0].get("operator") != "In":
            return None
        names.update(fields[0].get("values") or [])
    return next(iter(names)) if len(names) == 1 else None


def _affinity_ok(spec: dict[str, Any], node: dict[str, Any]) -> bool:
    labels = node["metadata"].get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    req = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if req:
        terms = req.get("nodeSelectorTerms") or []
        fields = {"metadata.name": node["metadata"]["name"]}

        def term_ok(term: dict[str, Any]) -> bool:
            exprs = term.get("matchExpressions") or []
            fexprs = term.get("matchFields") or []
            if not exprs and not fexprs:
                return False
            return all(_match_expr(e, labels) for e in exprs) and all(
                _match_expr(e, fields) for e in fexprs
            )

        if not any(term_ok(t) for t in terms):
            return False
    return True


def filter_node(spec: dict[str, Any], node: dict[str, Any]) -> str | None:
    """The default scheduler's filters in order; the first failing reason, or None if it fits."""
    tols = spec.get("tolerations") or []
    if node["spec"].get("unschedulable") and not tolerates(
        tols, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    ):
        return "node(s) were unschedulable"
    for taint in node["spec"].get("taints") or []:
        if taint["effect"] in ("NoSchedule", "NoExecute") and not tolerates(tols, taint):
            if taint["key"] == "node.kubernetes.io/unschedulable":
                continue  # reported by NodeUnschedulable above
            return f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value') or ''}}}"
    if not _affinity_ok(spec, node):
        return "node(s) didn't match Pod's node affinity/selector"
    return None
