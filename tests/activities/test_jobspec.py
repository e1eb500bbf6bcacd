"""The pull pod fits packed nodes and is pinned by node name (issue 12, items 11 and 12)."""

from __future__ import annotations

from typing import Any

import pytest

from activities.jobspec import POD_REQUESTS, build_job
from common.models import TaskSpec

pytestmark = pytest.mark.unit

_UNITS = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1.0}


def quantity(q: str) -> float:
    for suffix in ("Ki", "Mi", "Gi", "m"):
        if q.endswith(suffix):
            return float(q[: -len(suffix)]) * _UNITS[suffix]
    return float(q)


def effective_requests(pod_spec: dict[str, Any]) -> dict[str, float]:
    """What the scheduler charges a pod: per resource, the larger of the largest init
    container's request and the sum of the containers' requests (k8s.io/component-helpers
    resource.PodRequests). A container that sets limits but not requests gets requests =
    limits from API defaulting (pkg/apis/core/v1/defaults.go, SetDefaults_Pod)."""

    def requests(c: dict[str, Any]) -> dict[str, float]:
        res = c.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        return {k: quantity(v) for k, v in merged.items()}

    total: dict[str, float] = {}
    for c in pod_spec["containers"]:
        for k, v in requests(c).items():
            total[k] = total.get(k, 0.0) + v
    for c in pod_spec.get("initContainers") or []:
        for k, v in requests(c).items():
            total[k] = max(total.get(k, 0.0), v)
    return total


def pod_spec(images: int) -> dict[str, Any]:
    spec = TaskSpec(images=[f"registry.example.com/team/app-{i}:1" for i in range(images)],
                    batch_size=1)  # fmt: skip
    job = build_job(
        task_id="task-20261202-050000-0a1b2c3d",
        unit=1,
        node="node-7",
        spec=spec,
        worker_image="busybox:1.37.0-musl",
        ttl_seconds=600,
        priority_class_name=None,
    )
    return dict(job["spec"]["template"]["spec"])


def test_requests_are_fixed_whatever_the_image_count() -> None:
    fixed = {k: quantity(v) for k, v in POD_REQUESTS.items()}
    assert effective_requests(pod_spec(1)) == fixed
    assert effective_requests(pod_spec(50)) == fixed
    assert fixed == {"cpu": 0.01, "memory": 16 * 2**20, "ephemeral-storage": 8 * 2**20}


def test_every_container_sets_requests_and_limits_explicitly() -> None:
    """No container is left to defaulting (requests = limits) or to a LimitRange default."""
    spec = pod_spec(3)
    for c in [*spec["initContainers"], *spec["containers"]]:
        assert set(c["resources"]["requests"]) == {"cpu", "memory", "ephemeral-storage"}
        assert set(c["resources"]["limits"]) == {"cpu", "memory", "ephemeral-storage"}
    assert all(
        quantity(v) == 0 for c in spec["containers"] for v in c["resources"]["requests"].values()
    )


def test_pinned_by_node_name_as_the_daemonset_controller_does() -> None:
    """pkg/controller/daemon/util/daemonset_util.go, ReplaceDaemonSetPodNodeNameNodeAffinity:
    required node affinity, one term, matchFields metadata.name In [node]."""
    spec = pod_spec(1)
    assert "nodeSelector" not in spec and "nodeName" not in spec
    assert spec["affinity"] == {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchFields": [
                            {"key": "metadata.name", "operator": "In", "values": ["node-7"]}
                        ]
                    }
                ]
            }
        }
    }
