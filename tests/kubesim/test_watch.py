"""Watch semantics: resume from a resourceVersion, 410 Gone, timeoutSeconds, bookmarks, drops."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from kubesim.testing import SimHandle
from tests.kubesim.conftest import job_body

pytestmark = pytest.mark.integration


def _stream_lines(sim: SimHandle, path: str, timeout: float = 10) -> list[dict]:
    with urllib.request.urlopen(sim.url + path, timeout=timeout) as resp:
        return [json.loads(line) for line in resp.read().splitlines() if line.strip()]


def test_watch_resumes_from_list_resource_version(sim: SimHandle, core: client.CoreV1Api) -> None:
    rv = core.list_namespace().metadata.resource_version
    core.create_namespace({"metadata": {"name": "w1"}})
    core.create_namespace({"metadata": {"name": "w2"}})
    events = list(watch.Watch().stream(core.list_namespace, resource_version=rv, timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [
        ("ADDED", "w1"),
        ("ADDED", "w2"),
    ]
    rvs = [int(e["object"].metadata.resource_version) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_watch_without_resource_version_starts_with_current_state(core: client.CoreV1Api) -> None:
    events = list(
        watch.Watch().stream(core.list_node, label_selector="pool=gpu", timeout_seconds=1)
    )
    assert len(events) == 6 and all(e["type"] == "ADDED" for e in events)


def test_too_old_resource_version_gives_410(sim: SimHandle, core: client.CoreV1Api) -> None:
    rv = core.list_namespace().metadata.resource_version
    core.create_namespace({"metadata": {"name": "old"}})
    sim.expire_watches()
    lines = _stream_lines(
        sim, f"/api/v1/namespaces?watch=true&resourceVersion={rv}&timeoutSeconds=5"
    )
    assert len(lines) == 1 and lines[0]["type"] == "ERROR"
    status = lines[0]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert status["message"].startswith(f"too old resource version: {rv}")
    # The official client turns it into ApiException(410), as against a real apiserver.
    with pytest.raises(ApiException) as ei:
        for _ in watch.Watch().stream(core.list_namespace, resource_version=rv, timeout_seconds=2):
            pass
    assert ei.value.status == 410
    # A fresh list gives a resourceVersion that works again.
    fresh = core.list_namespace().metadata.resource_version
    assert (
        list(watch.Watch().stream(core.list_namespace, resource_version=fresh, timeout_seconds=1))
        == []
    )


def test_expire_next_watch_fault(sim: SimHandle, core: client.CoreV1Api) -> None:
    rv = core.list_namespace().metadata.resource_version
    sim.set_faults(expire_next_watch=True)
    first = _stream_lines(sim, f"/api/v1/namespaces?watch=1&resourceVersion={rv}&timeoutSeconds=1")
    assert first[0]["object"]["code"] == 410
    assert (
        _stream_lines(sim, f"/api/v1/namespaces?watch=1&resourceVersion={rv}&timeoutSeconds=1")
        == []
    )


def test_timeout_seconds_is_honoured(sim: SimHandle) -> None:
    t0 = time.monotonic()
    lines = _stream_lines(
        sim,
        "/api/v1/namespaces?watch=true&resourceVersion=1&timeoutSeconds=1&allowWatchBookmarks=true",
    )
    took = time.monotonic() - t0
    assert 0.9 <= took < 5
    assert (
        lines[-1]["type"] == "BOOKMARK"
        and int(lines[-1]["object"]["metadata"]["resourceVersion"]) > 1
    )


def test_watch_drops_fault(sim: SimHandle) -> None:
    sim.set_faults(watch_disconnect_seconds=0.3)
    t0 = time.monotonic()
    _stream_lines(sim, "/api/v1/pods?watch=true&timeoutSeconds=30")
    assert time.monotonic() - t0 < 3


def test_selector_transitions_in_watch(
    sim: SimHandle, core: client.CoreV1Api, batch: client.BatchV1Api
) -> None:
    """A pod leaving a field selector's set arrives as DELETED, as from the watch cache."""
    rv = core.list_namespaced_pod("default").metadata.resource_version
    batch.create_namespaced_job(
        "default", job_body("sel", [{"name": "c", "image": "busybox"}], node="compute-2")
    )
    seen: list[tuple[str, str]] = []
    for e in watch.Watch().stream(
        core.list_namespaced_pod,
        "default",
        field_selector="status.phase=Pending",
        resource_version=rv,
        timeout_seconds=3,
    ):
        seen.append((e["type"], e["object"].status.phase))
        if e["type"] == "DELETED":
            break
    assert (
        seen[0][0] == "ADDED"
        and seen[-1][0] == "DELETED"
        and seen[-1][1] in ("Running", "Succeeded")
    )


def test_watch_job_to_completion(sim: SimHandle, batch: client.BatchV1Api) -> None:
    rv = batch.list_namespaced_job("default").metadata.resource_version
    batch.create_namespaced_job("default", job_body("wj", [{"name": "c", "image": "busybox"}]))
    w = watch.Watch()
    final = None
    for e in w.stream(
        batch.list_namespaced_job, "default", resource_version=rv, timeout_seconds=10
    ):
        conds = e["object"].status.conditions or []
        if any(c.type == "Complete" for c in conds):
            final = e["object"]
            w.stop()
    assert final is not None and final.status.succeeded == 1
