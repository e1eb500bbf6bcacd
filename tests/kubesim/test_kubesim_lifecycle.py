"""Control-plane lifecycles observed through the real client's watch: kubelet TerminatePod, the
Job controller's terminal conditions, pod GC, node lifecycle and taint eviction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes import client, config, watch

from kubesim.testing import SimHandle, start_sim
from tests.kubesim.conftest import job_body, job_pods, wait_for

pytestmark = pytest.mark.integration

SLOW = "registry.example.com/slow:1"
UNKNOWN = {
    "reason": "ContainerStatusUnknown",
    "exitCode": 137,
    "message": "The container could not be located when the pod was terminated",
}


def scenario(**control_plane: Any) -> dict[str, Any]:
    return {
        "nodeGroups": [
            {"name": "a", "count": 3},
            {"name": "b", "count": 2, "arch": "arm64"},
        ],
        "images": [{"name": SLOW, "pullSeconds": 100000}],
        "controlPlane": control_plane,
    }


@contextmanager
def sim_with(time_scale: float = 100, **control_plane: Any) -> Iterator[SimHandle]:
    with start_sim(nodes=None, scenario=scenario(**control_plane), time_scale=time_scale) as s:
        yield s


def apis(sim: SimHandle) -> tuple[client.CoreV1Api, client.BatchV1Api]:
    api = config.new_client_from_config(config_file=str(sim.kubeconfig_path))
    return client.CoreV1Api(api), client.BatchV1Api(api)


def watch_until(
    list_fn: Callable[..., Any],
    rv: str | None,
    done: Callable[[str, dict[str, Any]], bool],
    timeout: int = 20,
    **kw: Any,
) -> list[tuple[str, dict[str, Any]]]:
    """Every (type, raw object) from `rv` on, until `done` says so."""
    seen: list[tuple[str, dict[str, Any]]] = []
    stream = watch.Watch().stream(list_fn, resource_version=rv, timeout_seconds=timeout, **kw)
    for ev in stream:
        seen.append((ev["type"], ev["raw_object"]))
        if done(ev["type"], ev["raw_object"]):
            return seen
    raise AssertionError(f"watch ended before the condition; saw {[t for t, _ in seen]}")


def pulling_pod(sim: SimHandle, batch: client.BatchV1Api, name: str, **spec: Any) -> dict[str, Any]:
    batch.create_namespaced_job(
        "default", job_body(name, [{"name": "c", "image": SLOW}], node="a-1", **spec)
    )
    return wait_for(
        lambda: (p := job_pods(sim, name)) and p[0].get("status", {}).get("startTime") and p[0],
        what="a pulling pod",
    )


def state(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["status"]["containerStatuses"][0]["state"]


def test_deleted_pod_turns_failed_with_container_status_unknown_before_removal() -> None:
    with sim_with() as sim:
        core, batch = apis(sim)
        pod = pulling_pod(sim, batch, "del")
        name = pod["metadata"]["name"]
        rv = core.list_namespaced_pod("default").metadata.resource_version
        core.delete_namespaced_pod(name, "default")
        seen = watch_until(
            core.list_pod_for_all_namespaces,
            rv,
            lambda t, o: t == "DELETED" and o["metadata"]["name"] == name,
            field_selector=f"metadata.name={name}",
        )
        mods = [o for t, o in seen if t == "MODIFIED"]
        assert mods[0]["metadata"].get("deletionTimestamp")
        assert mods[0]["status"]["phase"] == "Pending"  # still waiting: ContainerCreating
        failed = [o for o in mods if o["status"]["phase"] == "Failed"]
        assert failed, "the pod must be written Failed before it goes"
        term = state(failed[-1])["terminated"]
        assert {k: term[k] for k in UNKNOWN} == UNKNOWN
        assert seen[-1][0] == "DELETED" and seen[-1][1]["status"]["phase"] == "Failed"


def test_job_deadline_failure_target_first_failed_once_no_pod_terminates() -> None:
    with sim_with() as sim:
        _core, batch = apis(sim)
        rv = batch.list_namespaced_job("default").metadata.resource_version
        pod = pulling_pod(sim, batch, "dl", activeDeadlineSeconds=5)
        seen = watch_until(
            batch.list_job_for_all_namespaces,
            rv,
            lambda t, o: any(
                c["type"] == "Failed" for c in (o.get("status") or {}).get("conditions", [])
            ),
        )
        with_target = [
            o
            for _, o in seen
            if [c["type"] for c in (o.get("status") or {}).get("conditions", [])]
            == ["FailureTarget"]
        ]
        assert with_target, "FailureTarget comes alone first"
        assert any(o["status"].get("terminating") == 1 for o in with_target)
        final = seen[-1][1]["status"]
        assert [c["type"] for c in final["conditions"]] == ["FailureTarget", "Failed"]
        assert final["conditions"][1]["reason"] == "DeadlineExceeded"
        assert final["terminating"] == 0 and final["failed"] == 1
        assert not job_pods(sim, "dl")
        events = [
            e["reason"]
            for e in sim.objects("events", "default")
            if e["involvedObject"]["uid"] == pod["metadata"]["uid"]
        ]
        assert "Pulling" in events
