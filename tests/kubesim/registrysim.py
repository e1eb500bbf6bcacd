"""kubesim with a real registry in its scenario, for the tests of registrypull.py and the 429
proxy: start it, run a pull Job on one node, read the kubelet's pull error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from kubesim.testing import SimHandle, start_sim
from tests.activities.registry.conftest import Served
from tests.kubesim.conftest import FAST, job_body, job_pods, wait_for

GROUPS = [
    {"name": "amd", "count": 1, "arch": "amd64"},
    {"name": "arm", "count": 1, "arch": "arm64"},
]


def registry_sim(served: Served, **entry: Any) -> Iterator[SimHandle]:
    reg = served.registry
    registry = {"url": reg.url, **entry}
    if reg.ca is not None:
        registry["caFile"] = str(reg.ca.cert)
    scenario = {"nodeGroups": GROUPS, "registries": [registry]}
    with start_sim(scenario=scenario, nodes=None, time_scale=FAST, seed=1) as sim:
        yield sim


def run(sim: SimHandle, name: str, image: str, node: str, **pod: Any) -> str:
    api = k8s.BatchV1Api(k8s_config.new_client_from_config(str(sim.kubeconfig_path)))
    body = job_body(
        name,
        [{"name": "pull", "image": image, "command": ["true"]}],
        node=node,
        backoffLimit=0,
        pod=pod,
    )
    api.create_namespaced_job("default", body)
    return name


def succeeded(sim: SimHandle, job: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        pods = job_pods(sim, job)
        return pods[0] if pods and pods[0]["status"].get("phase") == "Succeeded" else None

    return wait_for(done, 30, f"{job} to succeed")


def pull_error(sim: SimHandle, job: str, image: str) -> str:
    """The kubelet's `Failed to pull image` Event's error part (the ErrImagePull message)."""
    prefix = f'Failed to pull image "{image}": '

    def failed() -> str | None:
        for pod in job_pods(sim, job):
            name = pod["metadata"]["name"]
            for ev in sim.objects("events", "default"):
                msg = ev.get("message") or ""
                if ev["involvedObject"]["name"] == name and msg.startswith(prefix):
                    return msg[len(prefix) :]
        return None

    return wait_for(failed, 30, f"{job}'s pull to fail")


def waiting_reason(sim: SimHandle, job: str) -> str:
    (pod,) = job_pods(sim, job)
    return pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]


def status_names(sim: SimHandle, node: str) -> list[list[str]]:
    (obj,) = [n for n in sim.objects("nodes") if n["metadata"]["name"] == node]
    return [i["names"] for i in obj["status"].get("images") or []]
