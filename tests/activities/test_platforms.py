"""Registry-aware node checks (activities/platforms.py): platform, DiskPressure, disk size."""

from __future__ import annotations

from typing import Any

import pytest

from activities.platforms import (
    compressed_size_for,
    disk_pressure,
    insufficient_disk,
    no_matching_platform,
    registry_skip_reason,
)
from common.models import SkipReason
from common.preflight import ImagePlatform, PreflightError, ResolvedImage

pytestmark = pytest.mark.unit

MB = 1024 * 1024


def node(
    arch: str | None = "amd64",
    os_: str | None = "linux",
    *,
    storage: str | None = "100Gi",
    disk_pressure: bool = False,
    labels: bool = True,
) -> dict[str, Any]:
    lab = {}
    info = {}
    if labels:
        if arch:
            lab["kubernetes.io/arch"] = arch
        if os_:
            lab["kubernetes.io/os"] = os_
    else:
        info = {"architecture": arch, "operatingSystem": os_}
    status: dict[str, Any] = {
        "nodeInfo": info,
        "conditions": [
            {"type": "Ready", "status": "True"},
            {
                "type": "DiskPressure",
                "status": "True" if disk_pressure else "False",
                "reason": "KubeletHasDiskPressure",
                "message": "kubelet has disk pressure",
            },
        ],
    }
    if storage is not None:
        status["allocatable"] = {"cpu": "4", "ephemeral-storage": storage}
    return {"metadata": {"name": "n1", "labels": lab}, "status": status}


def image(name: str, *plats: tuple[str, int], variant: str | None = None) -> ResolvedImage:
    return ResolvedImage(
        image=name,
        digest="sha256:" + "a" * 64,
        platforms=[
            ImagePlatform(
                os="linux", architecture=a, variant=variant, digest="sha256:" + "b" * 64,
                compressed_size=size,
            )
            for a, size in plats
        ],
    )  # fmt: skip


MULTI = image("r.example.com/app:1", ("amd64", 300 * MB), ("arm64", 280 * MB))
AMD64_ONLY = image("r.example.com/tool:2", ("amd64", 50 * MB))
UNRESOLVED = ResolvedImage(image="r.example.com/x:1", error=PreflightError.UNREACHABLE)


def test_platform_offered_is_not_skipped() -> None:
    assert no_matching_platform(node("arm64"), [MULTI]) is None
    assert no_matching_platform(node("amd64"), [MULTI, AMD64_ONLY]) is None


def test_arm64_node_and_amd64_only_image_is_no_matching_platform() -> None:
    reason, message = no_matching_platform(node("arm64"), [MULTI, AMD64_ONLY]) or (None, "")
    assert reason == SkipReason.NO_MATCHING_PLATFORM
    assert message == "r.example.com/tool:2 offers linux/amd64, not this node's linux/arm64"


def test_os_must_match_too() -> None:
    reason, _ = no_matching_platform(node("amd64", "windows"), [AMD64_ONLY]) or (None, "")
    assert reason == SkipReason.NO_MATCHING_PLATFORM


def test_node_info_and_arch_aliases() -> None:
    assert no_matching_platform(node("x86_64", labels=False), [AMD64_ONLY]) is None
    assert no_matching_platform(node("aarch64", labels=False), [AMD64_ONLY]) is not None
    v8 = image("r.example.com/v8:1", ("arm64", MB), variant="v8")
    assert no_matching_platform(node("arm64"), [v8]) is None


def test_unresolved_images_and_unknown_nodes_never_skip() -> None:
    assert no_matching_platform(node("arm64"), [UNRESOLVED]) is None
    assert no_matching_platform(node(None, None), [AMD64_ONLY]) is None
    assert insufficient_disk(node(storage="1Ki"), [UNRESOLVED]) is None


def test_disk_pressure_condition() -> None:
    assert disk_pressure(node()) is None
    reason, message = disk_pressure(node(disk_pressure=True)) or (None, "")
    assert reason == SkipReason.DISK_PRESSURE
    assert message == "node reports DiskPressure: kubelet has disk pressure"


def test_size_is_the_nodes_platform_summed_over_images() -> None:
    assert compressed_size_for(node("amd64"), [MULTI, AMD64_ONLY]) == 350 * MB
    assert compressed_size_for(node("arm64"), [MULTI]) == 280 * MB
    # not offered: the largest platform counts
    assert compressed_size_for(node("s390x"), [MULTI]) == 300 * MB


@pytest.mark.parametrize(
    ("storage", "skipped"),
    [("699Mi", True), ("700Mi", False), ("734003200", False), ("100Gi", False), ("0", True)],
)
def test_insufficient_disk_is_allocatable_below_size_times_factor(
    storage: str, skipped: bool
) -> None:
    got = insufficient_disk(node(storage=storage), [MULTI, AMD64_ONLY], safety_factor=2.0)
    assert (got is not None) == skipped
    if got:
        assert got[0] == SkipReason.INSUFFICIENT_DISK
        assert "x 2 (a coarse check)" in got[1]


def test_no_allocatable_storage_or_a_bad_quantity_never_skips() -> None:
    assert insufficient_disk(node(storage=None), [MULTI]) is None
    assert insufficient_disk(node(storage="lots"), [MULTI]) is None


def test_first_reason_wins_in_a_fixed_order() -> None:
    both = node("arm64", storage="1Mi", disk_pressure=True)
    assert registry_skip_reason(both, [AMD64_ONLY])[0] == SkipReason.DISK_PRESSURE  # type: ignore[index]
    assert registry_skip_reason(node("arm64", storage="1Mi"), [AMD64_ONLY])[0] == (  # type: ignore[index]
        SkipReason.NO_MATCHING_PLATFORM
    )
    assert registry_skip_reason(node("amd64", storage="1Mi"), [AMD64_ONLY])[0] == (  # type: ignore[index]
        SkipReason.INSUFFICIENT_DISK
    )
    assert registry_skip_reason(node("amd64"), [MULTI, AMD64_ONLY]) is None
