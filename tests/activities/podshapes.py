"""Real-shaped pull pods, Jobs and kubelet statuses for the engine's reason tests.

The pod is the one IPS creates (the Job template from activities/jobspec.py), as the Job
controller makes it and the kubelet reports it. A container the kubelet no longer finds is
`terminated`, reason `ContainerStatusUnknown`, exit code 137, message as in
pkg/kubelet/status/status_manager.go (TerminatePod); Job conditions as the Job controller writes
them (pkg/controller/job/job_controller.go: `DeadlineExceeded`, `BackoffLimitExceeded`).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from activities.jobspec import build_job
from common.models import TaskSpec

NOW = datetime(2026, 12, 2, 5, 0, 0, tzinfo=UTC)
NODE = "ip-10-0-3-17.eu-west-1.compute.internal"
TASK = "task-20261202-045900-a1b2c3d4"


def pull_pod(images: list[str], *, phase: str = "Pending") -> dict[str, Any]:
    """The pod the Job controller makes from IPS's Job template, bound to NODE."""
    job = build_job(
        task_id=TASK,
        unit=1,
        node=NODE,
        spec=TaskSpec(images=images, batch_size=1, timeout_seconds=120),
        worker_image="busybox:1.37.0-musl",
        ttl_seconds=600,
        priority_class_name=None,
    )
    template = copy.deepcopy(job["spec"]["template"])
    name = f"{job['metadata']['name']}-x7k2p"
    meta = {
        **template["metadata"],
        "name": name,
        "namespace": "ips",
        "uid": "0b5d1c1e-4a56-4cf3-9f6a-2f3a3c1d9e77",
        "labels": {**template["metadata"]["labels"], "job-name": job["metadata"]["name"]},
    }
    spec = {**template["spec"], "nodeName": NODE}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": phase,
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastTransitionTime": "2026-12-02T04:59:01Z",
                }
            ],
            "initContainerStatuses": [
                {
                    "name": "ips-helper",
                    "image": "docker.io/library/busybox:1.37.0-musl",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                }
            ],
            "containerStatuses": [],
        },
    }


def waiting(name: str, image: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {"waiting": {"reason": reason, "message": message}},
    }


# The kubelet's TerminatePod for a container that never ran (status_manager.go).
UNKNOWN_137 = {
    "terminated": {
        "exitCode": 137,
        "reason": "ContainerStatusUnknown",
        "message": "The container could not be located when the pod was terminated",
    }
}

APP = "registry.example.com/team/app:1"
RATE = (
    'rpc error: code = Unknown desc = failed to pull and unpack image "registry.example.com/team/'
    'app:1": failed to resolve reference "registry.example.com/team/app:1": unexpected status '
    "from HEAD request to https://registry.example.com/v2/team/app/manifests/1: 429 Too Many "
    "Requests - Server message: toomanyrequests: You have reached your pull rate limit."
)


def deleted_at_deadline(pod: dict[str, Any]) -> dict[str, Any]:
    """What the watch shows after the Job controller deleted the pod at activeDeadlineSeconds:
    a deletionTimestamp, phase Failed, and every unstarted container ContainerStatusUnknown."""
    pod = copy.deepcopy(pod)
    pod["metadata"]["deletionTimestamp"] = "2026-12-02T05:01:01Z"
    pod["metadata"]["deletionGracePeriodSeconds"] = 1
    pod["status"]["phase"] = "Failed"
    for cs in pod["status"]["containerStatuses"]:
        cs["state"] = copy.deepcopy(UNKNOWN_137)
        cs["lastState"] = {}
    return pod


def job(condition_type: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "status": {
            "conditions": [
                {"type": condition_type, "status": "True", "reason": reason, "message": message}
            ],
            "failed": 1,
        },
    }


DEADLINE_JOB = job("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
