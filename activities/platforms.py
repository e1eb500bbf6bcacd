"""Registry-aware node checks (pure): platform, disk pressure, disk size (issue 16).

Each check takes a Node object (a dict, as listed) and, where it needs them, the preflight's
`ResolvedImage`s. Images the preflight could not resolve (an `error`, no platforms) are left
out of every check: the kubelet may still pull them, and will say so if it cannot.

- `NoMatchingPlatform`: the node's `kubernetes.io/os` and `kubernetes.io/arch` labels (or
  `status.nodeInfo.operatingSystem`/`architecture`) name a platform that an image does not
  offer. Architectures are compared after containerd's normalization (`x86_64` = `amd64`,
  `aarch64` = `arm64`; containerd/platforms, `normalizeArch`); the node labels carry no
  variant, so any variant of the architecture matches.
- `DiskPressure`: the node reports the `DiskPressure` condition as `True`. (The node lifecycle
  controller also taints such a node `node.kubernetes.io/disk-pressure:NoSchedule`,
  pkg/controller/nodelifecycle/node_lifecycle_controller.go, `nodeConditionToTaintKeyStatusMap`;
  checking the condition first names the real cause instead of `Tainted`.)
- `InsufficientDisk`: `status.allocatable["ephemeral-storage"]` is smaller than the sum of the
  images' compressed sizes for the node's platform, times a safety factor. This is coarse, on
  purpose: allocatable is the node's whole budget, not what is free now (the kubelet does not
  publish free image-filesystem space on the Node), images usually share layers with what is
  already there, and the unpacked size is larger than the compressed one by a factor that
  depends on the image. It catches only the hopeless case (a node far too small for the
  images); a node with no `ephemeral-storage` in allocatable is never skipped by it.
"""

from __future__ import annotations

from typing import Any

from kubernetes.utils import parse_quantity

from common.models import SkipReason
from common.preflight import ImagePlatform, ResolvedImage

OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"
DISK_SAFETY_FACTOR = 2.0

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm"}


def normalize_arch(arch: str) -> str:
    a = arch.strip().lower()
    return _ARCH_ALIASES.get(a, a)


def node_platform(node: dict[str, Any]) -> tuple[str | None, str | None]:
    """(os, arch) from the well-known labels, else from nodeInfo; None when unknown."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    info = (node.get("status") or {}).get("nodeInfo") or {}
    os_ = labels.get(OS_LABEL) or info.get("operatingSystem") or None
    arch = labels.get(ARCH_LABEL) or info.get("architecture") or None
    return os_, (normalize_arch(arch) if arch else None)


def _offers(plat: ImagePlatform, os_: str | None, arch: str | None) -> bool:
    return (os_ is None or plat.os == os_) and (
        arch is None or normalize_arch(plat.architecture) == arch
    )


def _resolved(images: list[ResolvedImage]) -> list[ResolvedImage]:
    return [i for i in images if i.error is None and i.platforms]


def no_matching_platform(
    node: dict[str, Any], images: list[ResolvedImage]
) -> tuple[SkipReason, str] | None:
    os_, arch = node_platform(node)
    if os_ is None and arch is None:
        return None
    lacking = [
        i
        for i in _resolved(images)
        if not any(_offers(platform, os_, arch) for platform in i.platforms)
    ]
    if not lacking:
        return None
    first = lacking[0]
    offered = ", ".join(
        sorted({f"{platform.os}/{platform.architecture}" for platform in first.platforms})
    )
    more = f" (and {len(lacking) - 1} more images)" if len(lacking) > 1 else ""
    return (
        SkipReason.NO_MATCHING_PLATFORM,
        f"{first.image} offers {offered}, not this node's {os_ or '?'}/{arch or '?'}{more}",
    )


def disk_pressure(node: dict[str, Any]) -> tuple[SkipReason, str] | None:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "DiskPressure" and cond.get("status") == "True":
            why = cond.get("message") or cond.get("reason") or ""
            return SkipReason.DISK_PRESSURE, f"node reports DiskPressure: {why}".rstrip(": ")
    return None


def compressed_size_for(node: dict[str, Any], images: list[ResolvedImage]) -> int:
    """Sum over the resolved images of the size of the platform this node would pull (the
    largest platform when the node's platform is unknown or not offered)."""
    os_, arch = node_platform(node)
    total = 0
    for img in _resolved(images):
        matching = [
            platform.compressed_size for platform in img.platforms if _offers(platform, os_, arch)
        ]
        total += max(matching or [platform.compressed_size for platform in img.platforms])
    return total


def insufficient_disk(
    node: dict[str, Any], images: list[ResolvedImage], safety_factor: float = DISK_SAFETY_FACTOR
) -> tuple[SkipReason, str] | None:
    raw = ((node.get("status") or {}).get("allocatable") or {}).get("ephemeral-storage")
    if raw is None:
        return None
    try:
        allocatable = int(parse_quantity(raw))
    except ValueError:
        return None
    size = compressed_size_for(node, images)
    needed = int(size * safety_factor)
    if size == 0 or allocatable >= needed:
        return None
    return (
        SkipReason.INSUFFICIENT_DISK,
        f"allocatable ephemeral-storage {raw} ({allocatable} bytes) is less than the images' "
        f"compressed size {size} bytes x {safety_factor:g} (a coarse check)",
    )


def registry_skip_reason(
    node: dict[str, Any],
    images: list[ResolvedImage],
    safety_factor: float = DISK_SAFETY_FACTOR,
) -> tuple[SkipReason, str] | None:
    """The first of DiskPressure, NoMatchingPlatform, InsufficientDisk that applies, or None."""
    return (
        disk_pressure(node)
        or no_matching_platform(node, images)
        or insufficient_disk(node, images, safety_factor)
    )
