"""Node selection with the preflight's answer (issue 16): the skip order with the platform and
disk checks, already-warm by digest, and slim nodes deciding exactly like whole ones."""

from __future__ import annotations

from typing import Any

import pytest

from activities.prewarm import slim_node
from activities.selection import node_has_images, select_nodes
from common.models import ImagePullPolicy, SkipReason, TaskSpec, Toleration
from common.preflight import ImagePlatform, ResolvedImage

pytestmark = pytest.mark.unit

MB = 1024 * 1024
D_MULTI = "sha256:" + "a" * 64
D_AMD = "sha256:" + "b" * 64
D_OLD = "sha256:" + "c" * 64


def plat(arch: str, size: int = 50 * MB) -> ImagePlatform:
    return ImagePlatform(os="linux", architecture=arch, digest="sha256:" + "d" * 64,
                         compressed_size=size)  # fmt: skip


MULTI = ResolvedImage(image="reg.local:5000/multi:1", digest=D_MULTI,
                      platforms=[plat("amd64"), plat("arm64")])  # fmt: skip
AMD64_ONLY = ResolvedImage(image="reg.local:5000/amd64only:1", digest=D_AMD,
                           platforms=[plat("amd64")])  # fmt: skip
SPEC = TaskSpec(images=[MULTI.image, AMD64_ONLY.image], batch_size=10)


def node(
    name: str,
    arch: str = "amd64",
    *,
    os_: str = "linux",
    ready: bool = True,
    cordoned: bool = False,
    disk_pressure: bool = False,
    taints: list[dict[str, str]] | None = None,
    storage: str = "100Gi",
    images: list[list[str]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/os": os_, "kubernetes.io/arch": arch}},
        "spec": {"unschedulable": cordoned, "taints": taints or []},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False", "reason": "R"},
                {"type": "DiskPressure", "status": "True" if disk_pressure else "False",
                 "reason": "KubeletHasDiskPressure", "message": "kubelet has disk pressure"},
            ],
            "nodeInfo": {"operatingSystem": os_, "architecture": arch},
            "allocatable": {"cpu": "4", "ephemeral-storage": storage},
            "images": [{"names": names} for names in images or []],
        },
    }  # fmt: skip


PRESSURE_TAINT = {"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"}
GPU_TAINT = {"key": "gpu", "value": "1", "effect": "NoSchedule"}


def reasons(nodes: list[dict[str, Any]], spec: TaskSpec = SPEC) -> dict[str, SkipReason | None]:
    sel = select_nodes(nodes, spec, [MULTI, AMD64_ONLY])
    got: dict[str, SkipReason | None] = {n: None for n in sel.targets}
    got.update({s.node_name: s.reason for s in sel.skipped})
    return got


def test_skips_come_in_the_documented_order() -> None:
    # Each node has every problem from its own reason on down: the first one names it.
    nodes = [
        node("a-nonlinux", "arm64", os_="windows", ready=False, disk_pressure=True),
        node("b-notready", "arm64", ready=False, cordoned=True, disk_pressure=True),
        node("c-cordoned", "arm64", cordoned=True, disk_pressure=True, taints=[PRESSURE_TAINT]),
        node("d-pressure", "arm64", disk_pressure=True, taints=[PRESSURE_TAINT], storage="1Mi"),
        node("e-tainted", "arm64", taints=[GPU_TAINT], storage="1Mi"),
        node("f-platform", "arm64", storage="1Mi"),
        node("g-disk", "amd64", storage="150Mi"),  # needs (50 + 50) MiB x 2
        node("h-fine", "amd64", storage="200Mi"),
        node("i-fine-x86_64", "x86_64"),
    ]
    assert reasons(nodes) == {
        "a-nonlinux": SkipReason.NON_LINUX,
        "b-notready": SkipReason.NOT_READY,
        "c-cordoned": SkipReason.CORDONED,
        "d-pressure": SkipReason.DISK_PRESSURE,
        "e-tainted": SkipReason.TAINTED,
        "f-platform": SkipReason.NO_MATCHING_PLATFORM,
        "g-disk": SkipReason.INSUFFICIENT_DISK,
        "h-fine": None,
        "i-fine-x86_64": None,
    }
    sel = select_nodes(nodes, SPEC, [MULTI, AMD64_ONLY])
    platform = next(s for s in sel.skipped if s.reason == SkipReason.NO_MATCHING_PLATFORM)
    assert platform.message == (
        "reg.local:5000/amd64only:1 offers linux/amd64, not this node's linux/arm64"
    )


def test_a_tolerated_pressure_taint_still_skips_for_disk_pressure() -> None:
    tolerant = SPEC.model_copy(update={"tolerations": [Toleration(operator="Exists")]})
    assert reasons([node("p", disk_pressure=True, taints=[PRESSURE_TAINT])], tolerant) == {
        "p": SkipReason.DISK_PRESSURE
    }


def test_without_the_preflight_only_the_node_checks_apply() -> None:
    # Unreachable registry: no platforms, no sizes; the kubelet will tell.
    sel = select_nodes([node("arm", "arm64", storage="1Mi"), node("dp", disk_pressure=True)], SPEC)
    assert sel.targets == ["arm"]
    assert [(s.node_name, s.reason) for s in sel.skipped] == [("dp", SkipReason.DISK_PRESSURE)]


# --- already warm, by digest ---------------------------------------------------------------

IMG = "reg.local:5000/multi:1"
ONE = [MULTI]


@pytest.mark.parametrize(
    ("listed", "pin", "warm"),
    [
        # pulled by the pinned reference: containerd lists name@digest only
        ([[f"reg.local:5000/multi@{D_MULTI}"]], True, True),
        ([[f"reg.local:5000/multi@{D_MULTI}"]], False, True),
        # the tag and the resolved digest
        ([[f"reg.local:5000/multi@{D_MULTI}", IMG]], True, True),
        # the tag, but another digest: the tag moved since that pull
        ([[f"reg.local:5000/multi@{D_OLD}", IMG]], True, False),
        ([[f"reg.local:5000/multi@{D_OLD}", IMG]], False, True),
        # a tag with no digest listed proves nothing against it
        ([[IMG]], True, True),
        # another digest alone is not this image
        ([[f"reg.local:5000/multi@{D_OLD}"]], True, False),
        ([], True, False),
    ],
)
def test_warm_by_digest(listed: list[list[str]], pin: bool, warm: bool) -> None:
    n = node("n", images=listed)
    assert node_has_images(n, [IMG], ONE, pin_digests=pin) is warm


def test_unresolved_images_match_by_name_only() -> None:
    n = node("n", images=[[f"reg.local:5000/multi@{D_MULTI}"]])
    assert not node_has_images(n, [IMG])
    failed = MULTI.model_copy(update={"digest": None, "error": "NotFound", "platforms": []})
    assert not node_has_images(n, [IMG], [failed], pin_digests=True)


@pytest.mark.parametrize("pin", [True, False])
def test_slim_nodes_select_exactly_like_whole_nodes_with_the_preflight(pin: bool) -> None:
    spec = TaskSpec(images=[IMG, AMD64_ONLY.image], batch_size=5,
                    image_pull_policy=ImagePullPolicy.IF_NOT_PRESENT)  # fmt: skip
    both = [f"reg.local:5000/amd64only@{D_AMD}"]
    nodes = []
    for i in range(60):
        kind = i % 6
        listed = {
            0: [[f"reg.local:5000/multi@{D_MULTI}"], both],
            1: [[f"reg.local:5000/multi@{D_OLD}", IMG], both],
            2: [[IMG], [AMD64_ONLY.image]],
        }.get(kind, [])
        arch, storage = ("arm64" if kind == 3 else "amd64"), ("1Mi" if kind == 5 else "10Gi")
        nodes.append(node(f"n{i:02d}", arch, images=listed, disk_pressure=kind == 4,
                          storage=storage))  # fmt: skip
    resolved = [MULTI, AMD64_ONLY]
    slim = [slim_node(n, spec, resolved, pin_digests=pin) for n in nodes]
    assert select_nodes(slim, spec, resolved, pin_digests=pin) == select_nodes(
        nodes, spec, resolved, pin_digests=pin
    )
    sel = select_nodes(nodes, spec, resolved, pin_digests=pin)
    assert sel.warm == (20 if pin else 30)
    assert sorted({s.reason for s in sel.skipped}) == sorted(
        {SkipReason.NO_MATCHING_PLATFORM, SkipReason.DISK_PRESSURE, SkipReason.INSUFFICIENT_DISK}
    )
