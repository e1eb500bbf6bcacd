"""list_nodes keeps only what selection reads (slim_node), and selection decides the same."""

from __future__ import annotations

import json
from typing import Any

import pytest

from activities.prewarm import slim_node
from activities.selection import select_nodes
from common.models import ImagePullPolicy, TaskSpec, Toleration

pytestmark = pytest.mark.unit

IMAGES = ["nginx:1.27", "registry.example.com/team/app:2.4.1"]


def full_node(i: int) -> dict[str, Any]:
    """A Node as the API serves it: most of its bytes are fields selection never reads."""
    name = f"node-{i:03d}"
    images = [
        {"names": [f"registry.example.com/lib/img-{k}@sha256:{k:064x}",
                   f"registry.example.com/lib/img-{k}:v{k}"], "sizeBytes": 10_000_000 + k}
        for k in range(50)
    ]  # fmt: skip
    if i % 3 == 0:  # every third node already holds both images
        images[:2] = [{"names": ["docker.io/library/nginx:1.27"]},
                      {"names": ["registry.example.com/team/app:2.4.1"]}]  # fmt: skip
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{i}",
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "pool": "a"},
            "annotations": {f"note-{k}": "x" * 80 for k in range(10)},
            "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {"x": "y" * 500}}}],
        },
        "spec": {
            "unschedulable": i % 7 == 0,
            "taints": [{"key": "gpu", "value": "1", "effect": "NoSchedule"}] if i % 5 == 0 else [],
            "podCIDR": "10.0.0.0/24",
        },
        "status": {
            "conditions": [
                {"type": t, "status": "False", "reason": "Fine", "message": "m" * 60,
                 "lastTransitionTime": "2026-01-01T00:00:00Z"}
                for t in ("MemoryPressure", "DiskPressure", "PIDPressure")
            ] + [{"type": "Ready", "status": "False" if i % 11 == 0 else "True",
                  "reason": "KubeletReady", "message": "kubelet is posting ready status",
                  "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "nodeInfo": {"operatingSystem": "windows" if i % 13 == 0 else "linux",
                         "kernelVersion": "6.1", "kubeletVersion": "v1.31.0"},
            "images": images,
            "addresses": [{"type": "InternalIP", "address": f"10.0.0.{i % 250}"}],
        },
    }  # fmt: skip


@pytest.mark.parametrize("policy", list(ImagePullPolicy))
def test_slim_nodes_select_exactly_like_whole_nodes(policy: ImagePullPolicy) -> None:
    spec = TaskSpec(
        images=IMAGES,
        batch_size=10,
        image_pull_policy=policy,
        tolerations=[Toleration(key="gpu", operator="Exists")] if policy == "Always" else [],
    )
    nodes = [full_node(i) for i in range(100)]
    slim = [slim_node(n, spec) for n in nodes]
    assert select_nodes(slim, spec) == select_nodes(nodes, spec)
    sel = select_nodes(nodes, spec)
    assert sel.skipped and sel.targets  # the cases are all exercised
    if policy == ImagePullPolicy.IF_NOT_PRESENT:
        assert sel.warm > 0
    # A slim node is a few hundred bytes, whatever the Node carried.
    full_bytes = sum(len(json.dumps(n)) for n in nodes)
    slim_bytes = sum(len(json.dumps(n)) for n in slim)
    assert slim_bytes < full_bytes / 15
    assert max(len(json.dumps(n)) for n in slim) < 600
