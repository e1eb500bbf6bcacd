"""Which nodes a task pulls on, which it skips and why, and which are already warm (pure).

With the preflight's answer (`resolved`, issue 16) the registry-aware checks join the fixed
order (activities/platforms.py), and an image is also warm by its resolved digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from activities.platforms import disk_pressure, insufficient_disk, no_matching_platform
from common.engine import NodeSelection
from common.imageref import normalize, parse
from common.models import ImagePullPolicy, SkippedNodeDetail, SkipReason, TaskSpec, Toleration
from common.preflight import ResolvedImage

OS_LABEL = "kubernetes.io/os"
_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")

# The one normalizer (common/imageref.py); the old name stays for callers and tests.
normalize_image = normalize


class HasTolerations(Protocol):
    """A TaskSpec, or the slim PullSpec follow mode carries: skipping reads only these."""

    @property
    def tolerations(self) -> Sequence[Toleration]: ...


def node_has_images(
    node: dict[str, Any],
    images: list[str],
    resolved: Sequence[ResolvedImage] = (),
    *,
    pin_digests: bool = False,
) -> bool:
    """True only if every image is listed in status.images, compared after normalization.

    containerd lists `name:tag` (RepoTags) and `name@sha256:...` (RepoDigests); an image
    asked for as `name:tag@sha256:...` was pulled by digest and is listed as `name@sha256:...`
    only, which is exactly its normalized form. The kubelet caps status.images at 50 entries,
    so absence proves nothing; presence does.

    With the preflight's digests (`resolved`), an image is also present when its resolved
    digest is listed (`name@sha256:...`, whatever tag the node pulled it by). When the task
    pins digests, a listed tag no longer proves enough: an entry naming the tag and another
    digest of the repository holds other bits (the tag moved), so it does not count.
    """
    entries = [
        [normalize_image(name) for name in entry.get("names") or []]
        for entry in (node.get("status") or {}).get("images") or []
    ]
    present = {name for names in entries for name in names}
    digests = {r.image: r.pinned for r in resolved if r.error is None and r.pinned}
    return all(
        _image_present(image, digests.get(image), entries, present, pin_digests) for image in images
    )


def _image_present(
    image: str,
    pinned: str | None,
    entries: list[list[str]],
    present: set[str],
    pin_digests: bool,
) -> bool:
    wanted = normalize_image(image)
    if pinned is not None and normalize_image(pinned) in present:
        return True
    if wanted not in present:
        return False
    if pinned is None or not pin_digests:
        return True
    ref = parse(pinned)
    if ref is None:
        return True
    repo = ref.name
    # The tag is listed: it counts unless the same entry names another digest of the repository.
    for names in entries:
        if wanted in names and not any(n.startswith(f"{repo}@") for n in names):
            return True
    return False


def _ready(node: dict[str, Any]) -> tuple[bool, str]:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True", cond.get("message") or cond.get("reason") or ""
    return False, "no Ready condition reported"


def skip_reason(
    node: dict[str, Any], spec: HasTolerations, resolved: Sequence[ResolvedImage] = ()
) -> tuple[SkipReason, str] | None:
    """Why a node cannot run the pull pod, or None. Checked in a fixed, documented order:
    NonLinux, NotReady, Cordoned, DiskPressure, Tainted, NoMatchingPlatform, InsufficientDisk.
    DiskPressure comes before Tainted: the node lifecycle controller taints such a node
    `node.kubernetes.io/disk-pressure:NoSchedule`, and the condition names the real cause."""
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
    pressure = disk_pressure(node)
    if pressure is not None:
        return pressure
    for taint in nspec.get("taints") or []:
        effect = taint.get("effect")
        if effect not in _BLOCKING_EFFECTS:
            continue
        key, value = taint.get("key", ""), taint.get("value")
        if not any(tol.tolerates(key, value, effect) for tol in spec.tolerations):
            shown = f"{key}={value}" if value else key
            return SkipReason.TAINTED, f"taint {shown}:{effect} is not tolerated"
    images = list(resolved)
    return no_matching_platform(node, images) or insufficient_disk(node, images)


def select_nodes(
    nodes: list[dict[str, Any]],
    spec: TaskSpec,
    resolved: Sequence[ResolvedImage] = (),
    *,
    pin_digests: bool = False,
) -> NodeSelection:
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
        skip = skip_reason(node, spec, resolved)
        if skip is not None:
            selection.skipped.append(
                SkippedNodeDetail(node_name=name, reason=skip[0], message=skip[1])
            )
            continue
        if check_warm and node_has_images(node, spec.images, resolved, pin_digests=pin_digests):
            selection.warm += 1
            continue
        # The pod is pinned by node name (jobspec), so no hostname label is carried.
        selection.targets.append(name)
    return selection
