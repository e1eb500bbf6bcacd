"""Which nodes a task pulls on, which it skips and why, and which are already warm (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from common.engine import NodeSelection
from common.imageref import normalize
from common.models import ImagePullPolicy, SkippedNodeDetail, SkipReason, TaskSpec, Toleration

OS_LABEL = "kubernetes.io/os"
_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")

# The one normalizer (common/imageref.py); the old name stays for callers and tests.
normalize_image = normalize


class HasTolerations(Protocol):
    """A TaskSpec, or the slim PullSpec follow mode carries: skipping reads only these."""

    @property
    def tolerations(self) -> Sequence[Toleration]: ...


def node_has_images(node: dict[str, Any], images: list[str]) -> bool:
    """True only if every image is listed in status.images, compared after normalization.

    containerd lists `name:tag` (RepoTags) and `name@sha256:...` (RepoDigests); an image
    asked for as `name:tag@sha256:...` was pulled by digest and is listed as `name@sha256:...`
    only, which is exactly its normalized form. The kubelet caps status.images at 50 entries,
    so absence proves nothing; presence does.
    """
    present: set[str] = set()
    for entry in (node.get("status") or {}).get("images") or []:
        for name in entry.get("names") or []:
            present.add(normalize_image(name))
    return all(normalize_image(image) in present for image in images)


def _ready(node: dict[str, Any]) -> tuple[bool, str]:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True", cond.get("message") or cond.get("reason") or ""
    return False, "no Ready condition reported"


def skip_reason(node: dict[str, Any], spec: HasTolerations) -> tuple[SkipReason, str] | None:
    """Why a node cannot run the pull pod, or None. Checked in a fixed, documented order."""
    meta, nspec = node.get("metadata") or {}, node.get("spec") or {}
    labels = meta.get("labels") or {}
    node_os = labels.get(OS_LABEL) or ((node.get("status") or {}).get("nodeInfo") or {}).get(
        "operatingSystem"
    )
    if node_os and node_os != "linux":
        return (
            SkipReason.NON_LINUX,
            f"operating system {node_os!r}: the helper binary is Linux-only",
        )
    ready, why = _ready(node)
    if not ready:
        return SkipReason.NOT_READY, f"node is NotReady: {why}".rstrip(": ")
    if nspec.get("unschedulable"):
        return SkipReason.CORDONED, "node is cordoned (spec.unschedulable)"
    for taint in nspec.get("taints") or []:
        effect = taint.get("effect")
        if effect not in _BLOCKING_EFFECTS:
            continue
        key, value = taint.get("key", ""), taint.get("value")
        if not any(tol.tolerates(key, value, effect) for tol in spec.tolerations):
            shown = f"{key}={value}" if value else key
            return SkipReason.TAINTED, f"taint {shown}:{effect} is not tolerated"
    return None


def select_nodes(nodes: list[dict[str, Any]], spec: TaskSpec) -> NodeSelection:
    """Sort, filter by nodeNames, skip the ineligible, count the warm; the rest are targets."""
    by_name = {(n.get("metadata") or {}).get("name", ""): n for n in nodes}
    missing: list[str] = []
    if spec.node_names is not None:
        wanted = list(spec.node_names)
        missing = sorted(n for n in wanted if n not in by_name)
        by_name = {n: by_name[n] for n in wanted if n in by_name}
    selection = NodeSelection(matched=len(by_name), missing=missing)
    check_warm = spec.image_pull_policy == ImagePullPolicy.IF_NOT_PRESENT
    for name in sorted(by_name):
        node = by_name[name]
        skip = skip_reason(node, spec)
        if skip is not None:
            selection.skipped.append(
                SkippedNodeDetail(node_name=name, reason=skip[0], message=skip[1])
            )
            continue
        if check_warm and node_has_images(node, spec.images):
            selection.warm += 1
            continue
        # The pod is pinned by node name (jobspec), so no hostname label is carried.
        selection.targets.append(name)
    return selection
