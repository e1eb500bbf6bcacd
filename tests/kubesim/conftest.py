"""Fixtures for kubesim's own tests: a fresh fast sim per test, the real client, real kubectl."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config

from kubesim.testing import SimHandle, kubesim_factory, start_sim  # noqa: F401
from tests.waiting import wait_until

T = TypeVar("T")
KUBECTL = Path(sys.executable).parent / "kubectl"
FAST = 100.0  # simulated seconds per real second in these tests


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    """The default scenario (50 nodes), 100x faster than real time."""
    with start_sim(time_scale=FAST, seed=0) as handle:
        yield handle


def api_client(sim: SimHandle) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(sim.kubeconfig_path))


@pytest.fixture
def core(sim: SimHandle) -> client.CoreV1Api:
    return client.CoreV1Api(api_client(sim))


@pytest.fixture
def batch(sim: SimHandle) -> client.BatchV1Api:
    return client.BatchV1Api(api_client(sim))


def kubectl(sim: SimHandle, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Real kubectl, with only the kubeconfig kubesim wrote."""
    proc = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(sim.kubeconfig_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": "/nonexistent", "PATH": "/usr/bin:/bin"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
    return proc


def kubectl_json(sim: SimHandle, *args: str) -> Any:
    return json.loads(kubectl(sim, *args, "-o", "json").stdout)


def wait_for(fn: Callable[[], T | None], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll a cheap in-process predicate (tests only; kubesim itself never polls)."""
    return wait_until(fn, timeout, interval=0.02, message=f"timed out waiting for {what}")


def job_body(
    name: str,
    containers: list[dict[str, Any]],
    *,
    node: str | None = None,
    init: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": containers}
    if node:
        pod_spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    if init:
        pod_spec["initContainers"] = init
    pod_spec.update(spec.pop("pod", {}))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": pod_spec}, **spec},
    }


def job_pods(sim: SimHandle, job: str) -> list[dict[str, Any]]:
    return sim.objects("pods", "default", f"job-name={job}")


def job_done(sim: SimHandle, job: str) -> dict[str, Any] | None:
    for j in sim.objects("jobs", "default"):
        if j["metadata"]["name"] == job:
            conds = {
                c["type"]
                for c in j.get("status", {}).get("conditions", [])
                if c["status"] == "True"
            }
            if conds & {"Complete", "Failed"}:
                return j
    return None
