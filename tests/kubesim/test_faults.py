"""Fault injection (500, 429 + Retry-After, latency) and the /kubesim/ control endpoints."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubesim.testing import SimHandle, start_sim
from tests.kubesim.conftest import job_body, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def _http(
    sim: SimHandle, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        sim.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read() or b"null"
        try:
            return e.code, dict(e.headers), json.loads(raw)
        except ValueError:
            return e.code, dict(e.headers), raw.decode()  # APF's plain-text 429


def test_500_on_a_verb(sim: SimHandle, core: client.CoreV1Api, batch: client.BatchV1Api) -> None:
    sim.set_faults(http500={"create": 1.0})
    with pytest.raises(ApiException) as ei:
        batch.create_namespaced_job("default", job_body("f", [{"name": "c", "image": "busybox"}]))
    body = json.loads(ei.value.body)
    assert ei.value.status == 500 and body["reason"] == "InternalError" and body["kind"] == "Status"
    assert len(core.list_node().items) == 50  # other verbs unaffected
    assert sim.stats()["requests"]["create"]["jobs"]["500"] == 1
    sim.clear_faults()
    batch.create_namespaced_job("default", job_body("f", [{"name": "c", "image": "busybox"}]))


def test_429_with_retry_after_is_plain_text_as_apf(sim: SimHandle) -> None:
    sim.set_faults(http429={"*": 1.0}, retry_after_seconds=3)
    req = urllib.request.Request(sim.url + "/api/v1/nodes")
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(req, timeout=10)
    e = ei.value
    assert e.code == 429 and e.headers["Retry-After"] == "3"
    assert e.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert e.read() == b"Too many requests, please try again later.\n"
    # The control plane of the simulator itself is never faulted.
    assert _http(sim, "GET", "/kubesim/stats")[0] == 200


def test_429_status_object_when_apf_plain_text_is_off() -> None:
    sc = {"nodeGroups": [{"name": "n", "count": 1}], "controlPlane": {"apfPlainText429": False}}
    with start_sim(nodes=None, scenario=sc) as s:
        s.set_faults(http429={"*": 1.0}, retry_after_seconds=3)
        code, headers, body = _http(s, "GET", "/api/v1/nodes")
        assert code == 429 and headers["Retry-After"] == "3"
        assert body["reason"] == "TooManyRequests" and body["details"]["retryAfterSeconds"] == 3


def test_list_continue_token_expires_after_compaction(
    sim: SimHandle, core: client.CoreV1Api
) -> None:
    first = core.list_node(limit=10)
    assert first.metadata._continue
    sim.expire_watches()  # etcd compaction
    with pytest.raises(ApiException) as ei:
        core.list_node(limit=10, _continue=first.metadata._continue)
    body = json.loads(ei.value.body)
    assert ei.value.status == 410 and body["reason"] == "Expired"
    assert body["message"].startswith("The provided continue parameter is too old")
    # The fresh token in the Status continues at the latest resourceVersion.
    rest = core.list_node(limit=100, _continue=body["metadata"]["continue"])
    assert len(rest.items) == 40


def test_partial_rates_are_seeded_and_plausible(sim: SimHandle) -> None:
    sim.set_faults(http500={"list": 0.3})
    codes = [_http(sim, "GET", "/api/v1/namespaces")[0] for _ in range(200)]
    assert 30 <= codes.count(500) <= 90 and codes.count(200) == 200 - codes.count(500)


def test_latency(sim: SimHandle) -> None:
    sim.set_faults(latency_ms=200)
    t0 = time.monotonic()
    _http(sim, "GET", "/api/v1/namespaces/default")
    assert time.monotonic() - t0 >= 0.2


def test_faults_from_scenario_and_validation() -> None:
    with start_sim(
        nodes=3,
        scenario={"nodeGroups": [{"name": "a", "count": 3}], "faults": {"http429": {"get": 1.0}}},
    ) as sim:
        assert _http(sim, "GET", "/api/v1/nodes/a-1")[0] == 429
        assert _http(sim, "GET", "/api/v1/nodes")[0] == 200
        code, _, body = _http(sim, "POST", "/kubesim/faults", {"http500": {"fly": 0.5}})
        assert code == 422 and "unknown verb" in json.dumps(body)
        code, _, body = _http(sim, "POST", "/kubesim/faults", {"http500": {"get": 2}})
        assert code == 422


def test_http_control_endpoints(sim: SimHandle) -> None:
    code, _, faults = _http(
        sim, "POST", "/kubesim/faults", {"http500": {"delete": 1.0}, "retryAfterSeconds": 5}
    )
    assert code == 200 and faults["http500"] == {"delete": 1.0} and faults["retryAfterSeconds"] == 5
    assert _http(sim, "DELETE", "/kubesim/faults")[2]["http500"] == {}
    code, _, node = _http(
        sim, "POST", "/kubesim/nodes/compute-1/ready", {"ready": False, "mode": "notReady"}
    )
    assert code == 200 and node["status"]["conditions"][-1]["status"] == "False"
    assert any(t["key"] == "node.kubernetes.io/not-ready" for t in node["spec"]["taints"])
    assert (
        _http(sim, "POST", "/kubesim/nodes/compute-2/ready", {"ready": False, "mode": "x"})[0]
        == 422
    )
    # unreachable (the default): Unknown only after node-monitor-grace-period (40 s)
    code, _, node = _http(sim, "POST", "/kubesim/nodes/compute-2/ready", {"ready": False})
    assert code == 200 and node["status"]["conditions"][-1]["status"] == "True"
    wait_for(
        lambda: (
            _http(sim, "GET", "/api/v1/nodes/compute-2")[2]["status"]["conditions"][-1]["status"]
            == "Unknown"
        ),
        what="Ready=Unknown after the grace period",
    )
    _, _, node = _http(sim, "POST", "/kubesim/nodes/compute-1/cordon", {"cordoned": True})
    assert node["spec"]["unschedulable"] is True
    assert _http(sim, "POST", "/kubesim/nodes/ghost/ready", {"ready": True})[0] == 404
    assert _http(sim, "POST", "/kubesim/nodes/compute-1/ready", {"ready": "yes"})[0] == 400
    code, _, added = _http(sim, "POST", "/kubesim/nodes", {"count": 2, "group": "general"})
    assert added == {"added": ["general-15", "general-16"]}
    assert _http(sim, "DELETE", "/kubesim/nodes/general-16")[0] == 200
    assert _http(sim, "GET", "/api/v1/nodes/general-16")[0] == 404
    stats = _http(sim, "GET", "/kubesim/stats")[2]
    assert stats["objects"]["Node"] == 51
    assert stats["requests"]["get"]["nodes"]["404"] == 1
    rv = _http(sim, "GET", "/api/v1/namespaces")[2]["metadata"]["resourceVersion"]
    assert _http(sim, "POST", "/kubesim/compact")[0] == 200
    with urllib.request.urlopen(
        f"{sim.url}/api/v1/namespaces?watch=1&resourceVersion={int(rv) - 1}", timeout=5
    ) as r:
        assert json.loads(r.readline())["object"]["code"] == 410
    assert _http(sim, "GET", "/kubesim/pulls")[0] == 200
