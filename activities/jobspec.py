"""The pull Job: one per (task, node), one container per image (pure; see docs/engine.md)."""

from __future__ import annotations

import hashlib
from typing import Any

from common.models import TaskSpec

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "ips"
TASK_LABEL = "prewarm.ips.io/task"
NODE_LABEL = "prewarm.ips.io/node-hash"
UNIT_LABEL = "prewarm.ips.io/batch"
NODE_ANNOTATION = "prewarm.ips.io/node"
IMAGES_ANNOTATION = "prewarm.ips.io/images"
HELPER_CONTAINER = "ips-helper"
HELPER_MOUNT = "/ips-bin"
HELPER_VOLUME = "ips-bin"
CONTAINER_PREFIX = "pull-"
# The pod's requests are fixed, whatever the number of images (packed nodes are the ones worth
# prewarming). The scheduler charges a pod max(largest init container, sum of the containers)
# (component-helpers resource.PodRequests), so the helper init container carries the whole
# request and each pull container asks for zero, explicitly: a container that sets limits but
# no requests would get requests = limits from API defaulting, and a LimitRange default would
# apply per container. The pull containers run `busybox true`; the kubelet pulls the image,
# outside the pod's cgroup. Every container keeps limits (a quota on limits admits the pod).
POD_REQUESTS = {"cpu": "10m", "memory": "16Mi", "ephemeral-storage": "8Mi"}
_LIMITS = {"cpu": "100m", "memory": "32Mi", "ephemeral-storage": "16Mi"}
_HELPER_RESOURCES = {"requests": POD_REQUESTS, "limits": _LIMITS}
_PULL_RESOURCES = {
    "requests": {"cpu": "0", "memory": "0", "ephemeral-storage": "0"},
    "limits": _LIMITS,
}
NODE_NAME_FIELD = "metadata.name"
_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "runAsGroup": 65534,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _short_hash(value: str, n: int) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:n]


def node_hash(node: str) -> str:
    return _short_hash(node, 16)


def job_name(task_id: str, node: str) -> str:
    """Deterministic and DNS-1123 (28 characters): a retried activity adopts, never duplicates."""
    return f"ips-{_short_hash(task_id, 10)}-{node_hash(node)}"


def container_name(index: int) -> str:
    return f"{CONTAINER_PREFIX}{index}"


def task_selector(task_id: str) -> str:
    return f"{MANAGED_BY_LABEL}={MANAGED_BY},{TASK_LABEL}={task_id}"


def unit_selector(task_id: str, unit: int) -> str:
    return f"{task_selector(task_id)},{UNIT_LABEL}={unit}"


def node_affinity(node: str) -> dict[str, Any]:
    """Pin the pod to one node by name, as the DaemonSet controller does
    (pkg/controller/daemon/util/daemonset_util.go, ReplaceDaemonSetPodNodeNameNodeAffinity):
    required node affinity on the field `metadata.name`. Not `nodeName`, so the scheduler's
    taint, resource and readiness checks still apply; not the `kubernetes.io/hostname` label,
    which is neither guaranteed unique nor equal to the node's name."""
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": NODE_NAME_FIELD, "operator": "In", "values": [node]}]}
                ]
            }
        }
    }


def build_job(
    *,
    task_id: str,
    unit: int,
    node: str,
    spec: TaskSpec,
    worker_image: str,
    ttl_seconds: int,
    priority_class_name: str | None,
) -> dict[str, Any]:
    """The batch/v1 Job manifest, hardened to the restricted Pod Security Standard."""
    labels = {
        MANAGED_BY_LABEL: MANAGED_BY,
        TASK_LABEL: task_id,
        NODE_LABEL: node_hash(node),
        UNIT_LABEL: str(unit),
    }
    annotations = {NODE_ANNOTATION: node}
    mount = {"name": HELPER_VOLUME, "mountPath": HELPER_MOUNT}
    helper = {
        "name": HELPER_CONTAINER,
        "image": worker_image,
        "imagePullPolicy": "IfNotPresent",
        # The musl busybox is static: it runs in any image, with or without libc or a shell.
        "command": ["/bin/busybox", "cp", "/bin/busybox", f"{HELPER_MOUNT}/busybox"],
        "volumeMounts": [mount],
        "securityContext": _CONTAINER_SECURITY,
        "resources": _HELPER_RESOURCES,
    }
    containers = [
        {
            "name": container_name(i),
            "image": image,
            "imagePullPolicy": spec.image_pull_policy.value,
            "command": [f"{HELPER_MOUNT}/busybox", "true"],
            "volumeMounts": [{**mount, "readOnly": True}],
            "securityContext": _CONTAINER_SECURITY,
            "resources": _PULL_RESOURCES,
        }
        for i, image in enumerate(spec.images)
    ]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 1,
        "affinity": node_affinity(node),
        "tolerations": [t.model_dump(by_alias=True, exclude_none=True) for t in spec.tolerations],
        "imagePullSecrets": [{"name": s} for s in spec.image_pull_secrets],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "fsGroup": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumes": [{"name": HELPER_VOLUME, "emptyDir": {"sizeLimit": "8Mi"}}],
        "initContainers": [helper],
        "containers": containers,
    }
    if priority_class_name:
        pod_spec["priorityClassName"] = priority_class_name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(task_id, node),
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.timeout_seconds,
            "ttlSecondsAfterFinished": ttl_seconds,
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }
