"""The 429 fault proxy (kubesim/ratelimit_proxy.py) in front of the real TLS registry: kubesim's
kubelet reports the pull failure as containerd does, the engine's classification reads it as
RateLimited, and the limit's fraction, stickiness and period hold."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from activities.classify import classify_pod
from activities.pullmessage import reason_from_message
from common.models import FailureReason
from kubesim.ratelimit_proxy import ProxyHandle, start_proxy
from kubesim.ratelimits import Limit, Limiter
from kubesim.testing import SimHandle, start_sim
from tests.activities.registry import conftest as registries
from tests.activities.registry.conftest import PASSWORD, USER, Served
from tests.kubesim.conftest import FAST, job_pods, wait_for
from tests.kubesim.registrysim import GROUPS, pull_error, run, succeeded

layouts, registry_tools, test_ca = registries.layouts, registries.registry_tools, registries.test_ca
tls_registry = registries.tls_registry

pytestmark = pytest.mark.integration

# distribution 2.8 answers 404 for an OCI manifest unless the client accepts its type
OCI = {"Accept": "application/vnd.oci.image.manifest.v1+json"}


@pytest.fixture
def proxy(tls_registry: Served) -> Iterator[ProxyHandle]:
    reg = tls_registry.registry
    assert reg.ca is not None
    with start_proxy(reg.url, ca_file=str(reg.ca.cert), seed=3) as handle:
        yield handle


@pytest.fixture
def sim(proxy: ProxyHandle) -> Iterator[SimHandle]:
    scenario = {
        "nodeGroups": GROUPS,
        "registries": [{"url": proxy.url, "username": USER, "password": PASSWORD}],
    }
    with start_sim(scenario=scenario, nodes=None, time_scale=FAST, seed=1) as handle:
        yield handle


def test_a_limited_pull_fails_as_containerd_says_and_reads_rate_limited(
    proxy: ProxyHandle, sim: SimHandle, tls_registry: Served
) -> None:
    image = f"{proxy.host}/team/single:1"
    proxy.set_limit(1.0, retry_after_seconds=7)
    msg = pull_error(sim, run(sim, "limited", image, "amd-1"), image)
    assert msg == (
        f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": '
        f'failed to resolve reference "{image}": unexpected status from HEAD request to '
        f"{proxy.url}/v2/team/single/manifests/1: 429 Too Many Requests"
    )
    # containerd sends a 429'd request 5 times before it gives up
    assert proxy.stats()["limited"] >= 5
    assert reason_from_message(msg, image) == FailureReason.RATE_LIMITED

    def classified() -> object:
        (pod,) = job_pods(sim, "limited")
        verdict = classify_pod(pod, now=datetime.now(UTC), unschedulable_grace=60)
        return verdict if verdict.reason is not None else None

    verdict = wait_for(classified, 30, "a verdict")
    assert (verdict.done, verdict.reason, verdict.image) == (  # type: ignore[attr-defined]
        False,
        FailureReason.RATE_LIMITED,
        image,
    )
    # the limit lifts: the kubelet's next try after its back-off pulls the registry's bits
    proxy.clear_limit()
    pod = succeeded(sim, "limited")
    digest = tls_registry.images["single"].digest
    assert pod["status"]["containerStatuses"][0]["imageID"] == f"{proxy.host}/team/single@{digest}"


def test_429_answer_and_period(proxy: ProxyHandle) -> None:
    url = f"{proxy.url}/v2/team/single/manifests/1"
    auth = (USER, PASSWORD)
    assert httpx.head(url, auth=auth, headers=OCI).status_code == 200
    proxy.set_limit(1.0, seconds=1.0, retry_after_seconds=4)
    r = httpx.get(url, auth=auth, headers=OCI)
    assert (r.status_code, r.headers["retry-after"]) == (429, "4")
    assert r.json() == {"errors": [{"code": "TOOMANYREQUESTS", "message": "too many requests"}]}
    # only manifests are limited: the ping and blobs pass
    assert httpx.get(f"{proxy.url}/v2/", auth=auth).status_code == 200
    # the period ends by itself
    wait_for(
        lambda: httpx.head(url, auth=auth, headers=OCI).status_code == 200, 10, "the limit to end"
    )
    assert proxy.stats()["active"] is False
    # `after` delays it
    proxy.set_limit(1.0, after=3600)
    assert httpx.head(url, auth=auth, headers=OCI).status_code == 200


def test_per_client_fraction_is_sticky_within_a_window(
    proxy: ProxyHandle, request: pytest.FixtureRequest
) -> None:
    url = f"{proxy.url}/v2/team/single/manifests/1"
    proxy.set_limit(0.3, per="client", window_seconds=3600)
    http = httpx.Client()
    request.addfinalizer(http.close)

    def limited(client: str) -> bool:
        # no credentials: a pass is the registry's quick 401 (no bcrypt check per request)
        r = http.head(url, headers={**OCI, "X-Forwarded-For": client})
        assert r.status_code in (401, 429)
        return r.status_code == 429

    clients = [f"10.0.{i // 250}.{i % 250}" for i in range(200)]
    first = {c: limited(c) for c in clients}
    assert 40 <= sum(first.values()) <= 80  # about 30 % of 200 clients
    assert all(limited(c) == first[c] for c in clients[:50])  # a client stays over quota
    # per request: independent draws
    proxy.set_limit(0.3, per="request")
    hits = sum(limited("10.9.9.9") for _ in range(200))
    assert 40 <= hits <= 80


def test_per_total_is_one_bucket_over_all_clients(
    proxy: ProxyHandle, request: pytest.FixtureRequest
) -> None:
    url = f"{proxy.url}/v2/team/single/manifests/1"
    # 0.05 tokens/s: no token comes back within the burst below unless it takes 20 s
    proxy.set_limit(per="total", rate=0.05, burst=5, retry_after_seconds=3)
    http = httpx.Client()
    request.addfinalizer(http.close)

    def status(client: str) -> int:
        r = http.head(url, headers={**OCI, "X-Forwarded-For": client})
        assert r.status_code in (401, 429)
        if r.status_code == 429:
            assert r.headers["retry-after"] == "3"
        return r.status_code

    # 30 different nodes share the 5 tokens: a per-client quota would pass them all
    answers = [status(f"10.1.0.{i}") for i in range(30)]
    assert 5 <= answers.count(401) <= 6
    assert answers[:5] == [401] * 5
    stats = proxy.stats()
    assert stats["limited"] == answers.count(429) and stats["limitedClients"] >= 24
    assert stats["limit"]["per"] == "total" and stats["limit"]["rate"] == 0.05
    # the bucket refills by itself
    proxy.set_limit(per="total", rate=20, burst=1, retry_after_seconds=3)
    assert status("10.1.1.1") == 401
    wait_for(lambda: status("10.1.1.2") == 401, 10, "a token to come back")


def test_token_bucket_refills_at_rate_up_to_burst() -> None:
    limiter = Limiter()
    limiter.set(Limit(per="total", rate=2, burst=3), now=100.0)
    assert [limiter.take_token(100.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.take_token(100.25) is False  # half a token
    assert limiter.take_token(100.5) is True  # one token at 2/s
    assert limiter.take_token(100.5) is False
    # a long quiet spell fills the bucket to `burst`, never above
    assert [limiter.take_token(200.0) for _ in range(4)] == [True, True, True, False]
    assert Limit(per="total", rate=2.5).bucket_size == 3  # burst defaults to the rate


def test_nodes_only_spares_the_worker(proxy: ProxyHandle) -> None:
    url = f"{proxy.url}/v2/team/single/manifests/1"
    proxy.set_limit(1.0, clients="nodes")
    assert httpx.head(url, headers=OCI).status_code == 401  # the worker: no X-Forwarded-For
    node = {**OCI, "X-Forwarded-For": "10.0.0.7"}
    assert httpx.head(url, headers=node).status_code == 429
    proxy.set_limit(1.0)  # clients: all
    assert httpx.head(url, headers=OCI).status_code == 429


def test_control_api_names_the_bad_field(proxy: ProxyHandle) -> None:
    r = httpx.put(f"{proxy.url}/_proxy/limit", json={"fraction": 2})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "fraction"
    r = httpx.put(f"{proxy.url}/_proxy/limit", json={"fraction": 0.5, "windowSecond": 1})
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "windowSecond")
    r = httpx.put(f"{proxy.url}/_proxy/limit", json={"fraction": 0.5, "seconds": 30})
    assert r.json()["limit"]["fraction"] == 0.5 and r.json()["active"] is True
    assert httpx.delete(f"{proxy.url}/_proxy/limit").json()["limit"] is None
    # per total needs a rate (and no fraction); the others need a fraction
    r = httpx.put(f"{proxy.url}/_proxy/limit", json={"per": "total"})
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "rate")
    r = httpx.put(f"{proxy.url}/_proxy/limit", json={"per": "total", "rate": 0})
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "rate")
    r = httpx.put(f"{proxy.url}/_proxy/limit", json={"per": "total", "rate": 5, "burst": 0})
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "burst")
    r = httpx.put(f"{proxy.url}/_proxy/limit", json={"per": "client"})
    assert (r.status_code, r.json()["errors"][0]["field"]) == (422, "fraction")
    r = httpx.put(f"{proxy.url}/_proxy/limit", json={"per": "total", "rate": 5, "seconds": 9})
    assert r.status_code == 200 and r.json()["limit"]["burst"] is None


def test_command_line(tls_registry: Served) -> None:
    reg = tls_registry.registry
    assert reg.ca is not None
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubesim.ratelimit_proxy", "--upstream", reg.url,
         "--ca-file", str(reg.ca.cert), "--per", "total", "--rate", "0.01", "--burst", "1",
         "--retry-after", "2"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.match(r"ratelimit-proxy: listening on (http://\S+) -> ", line)
        assert m, line
        url = f"{m[1]}/v2/team/single/manifests/1"
        assert httpx.head(url, auth=(USER, PASSWORD), headers=OCI).status_code == 200
        r = httpx.head(url, auth=(USER, PASSWORD), headers=OCI)  # the one token is gone
        assert (r.status_code, r.headers["retry-after"]) == (429, "2")
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
