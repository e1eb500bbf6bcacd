"""Admission plugins that refuse a pod, with the API server's status and message.

Run for every pod create, from the API and from the Job controller (which then records a
`FailedCreate` Event "Error creating: <message>" on the Job and retries, as
`pkg/controller/controller_utils.go` `RealPodControl.createPods` and the Job controller's rate
limited requeue do). The plugins, in the API server's order, and what they follow upstream:

- Priority (`plugin/pkg/admission/priority/admission.go`, `admitPod`): a `priorityClassName`
  that does not exist -> 403 `pods "N" is forbidden: no PriorityClass with name X was found`.
- LimitRanger (`plugin/pkg/admission/limitranger/admission.go`, `maxConstraint`): a container
  over the namespace's max cpu -> 403 `maximum cpu usage per Container is 2, but limit is 4`.
- PodSecurity (`staging/src/k8s.io/pod-security-admission/admission/admission.go`,
  `EvaluatePod`; checks in `policy/check_*.go`): 403 `violates PodSecurity "restricted:latest":
  ...`.
- ValidatingAdmissionWebhook (`staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/errors/
  statuserror.go`, `ToStatusErr`): 400 `admission webhook "W" denied the request: <message>`.
- ResourceQuota (`staging/src/k8s.io/apiserver/pkg/admission/plugin/resourcequota/
  controller.go`, `checkRequest`): 403 `exceeded quota: Q, requested: pods=1, used: pods=N,
  limited: pods=N`.

`admission.NewForbidden` names the object by `generateName` when it has no name yet, so a
Job controller's refusal reads `pods "myjob-" is forbidden: ...`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubesim.cluster import Cluster

SYSTEM_PRIORITY_CLASSES = ("system-cluster-critical", "system-node-critical")


@dataclass
class Denied(Exception):
    code: int
    reason: str  # the Status reason ("" for a webhook denial)
    message: str
    name: str

    def __str__(self) -> str:
        return self.message


def _forbidden(name: str, why: str) -> Denied:
    return Denied(403, "Forbidden", f'pods "{name}" is forbidden: {why}', name)


def parse_cpu(q: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(m?)", str(q).strip())
    if not m:
        return 0.0
    return float(m.group(1)) / (1000 if m.group(2) else 1)


def _pinned_group(cluster: Cluster, spec: dict[str, Any]) -> str | None:
    """The node group of the node the pod is pinned to (nodeName, hostname selector, or a
    DaemonSet-style `matchFields metadata.name` affinity, as IPS pins its pull pods)."""
    from kubesim.cluster import pinned_node  # cluster imports this module

    node = (
        spec.get("nodeName")
        or (spec.get("nodeSelector") or {}).get("kubernetes.io/hostname")
        or pinned_node(spec)
    )
    ns = cluster.nodes.get(node or "")
    return ns.group if ns else None


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def _who(names: list[str]) -> str:
    return ("container " if len(names) == 1 else "containers ") + ", ".join(f'"{n}"' for n in names)


def _pod_security(level: str, spec: dict[str, Any]) -> list[str]:
    """The failed checks of the baseline and (for restricted) restricted profiles."""
    out: list[str] = []
    cs = _containers(spec)
    priv = [c["name"] for c in cs if (c.get("securityContext") or {}).get("privileged")]
    if priv:
        out.append(f"privileged ({_who(priv)} must not set securityContext.privileged=true)")
    host = [k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    if host:
        out.append(f"host namespaces ({', '.join(f'{k}=true' for k in host)})")
    paths = [v["name"] for v in spec.get("volumes") or [] if "hostPath" in v]
    if paths:
        out.append(
            f"hostPath volumes (volume{'s' if len(paths) > 1 else ''} "
            + ", ".join(f'"{p}"' for p in paths)
            + ")"
        )
    if level != "restricted":
        return out
    psc = spec.get("securityContext") or {}

    def each(pred: Any) -> list[str]:
        return [c["name"] for c in cs if pred(c.get("securityContext") or {})]

    bad = each(lambda sc: sc.get("allowPrivilegeEscalation") is not False)
    if bad:
        out.append(
            f"allowPrivilegeEscalation != false ({_who(bad)} must set "
            "securityContext.allowPrivilegeEscalation=false)"
        )
    bad = each(lambda sc: "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []))
    if bad:
        out.append(
            f"unrestricted capabilities ({_who(bad)} must set "
            'securityContext.capabilities.drop=["ALL"])'
        )
    if psc.get("runAsNonRoot") is not True:
        bad = each(lambda sc: sc.get("runAsNonRoot") is not True)
        if bad:
            out.append(
                f"runAsNonRoot != true (pod or {_who(bad)} must set "
                "securityContext.runAsNonRoot=true)"
            )
    if (psc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        bad = each(
            lambda sc: (
                (sc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost")
            )
        )
        if bad:
            out.append(
                f"seccompProfile (pod or {_who(bad)} must set securityContext.seccompProfile.type "
                'to "RuntimeDefault" or "Localhost")'
            )
    return out


def admit(cluster: Cluster, pod: dict[str, Any], name: str) -> None:
    """Raise `Denied` if an admission plugin of the scenario refuses the pod."""
    rules = cluster.scenario.admission
    spec = pod["spec"]
    namespace = pod["metadata"]["namespace"]
    pc = spec.get("priorityClassName")
    if pc and rules.priority_classes is not None and pc not in SYSTEM_PRIORITY_CLASSES:
        scoped = rules.priority_node_groups
        if pc not in rules.priority_classes and (
            scoped is None or _pinned_group(cluster, spec) in scoped
        ):
            raise _forbidden(name, f"no PriorityClass with name {pc} was found")
    for lr in rules.limit_ranges:
        if lr.namespace != namespace:
            continue
        for c in _containers(spec):
            limit = ((c.get("resources") or {}).get("limits") or {}).get("cpu")
            if limit is None:
                raise _forbidden(
                    name, f"maximum cpu usage per Container is {lr.max_cpu}.  No limit is specified"
                )
            if parse_cpu(limit) > parse_cpu(lr.max_cpu):
                raise _forbidden(
                    name, f"maximum cpu usage per Container is {lr.max_cpu}, but limit is {limit}"
                )
    level = rules.pod_security_enforce.get(namespace)
    if level and level != "privileged":
        failed = _pod_security(level, spec)
        if failed:
            raise _forbidden(name, f'violates PodSecurity "{level}:latest": ' + ", ".join(failed))
    for wh in rules.webhooks:
        for c in _containers(spec):
            if any(c.get("image", "").startswith(p) for p in wh.denied_image_prefixes):
                msg = wh.message.format(image=c["image"])
                raise Denied(
                    400, "", f'admission webhook "{wh.name}" denied the request: {msg}', name
                )
    for q in rules.quotas:
        if q.namespace != namespace:
            continue
        used = sum(
            1
            for e in cluster.store.entries("Pod", namespace)
            if e.obj["status"].get("phase") not in ("Succeeded", "Failed")
        )
        if used + 1 > q.pods:
            raise _forbidden(
                name,
                f"exceeded quota: {q.name}, requested: pods=1, used: pods={used}, "
                f"limited: pods={q.pods}",
            )
