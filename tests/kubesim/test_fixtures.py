"""kubesim's output for each path of issue 11 has the shape of its golden fixture in
tests/fixtures/real/ (phase, conditions, reasons, messages, exit codes, counts); the fixtures
themselves are valid objects (official schema, official client). Sources: the README there."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client

from kubesim.testing import start_sim
from tests.kubesim.fixture_shape import shape
from tests.kubesim.paths import PATHS, SCENARIO, run_paths

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real"
API_FIXTURES = ("continue-expired.status.json", "apf-429.txt")
MODELS = {"Pod": "V1Pod", "Job": "V1Job", "Event": "CoreV1Event", "Node": "V1Node"}


def _fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{name}.json").read_text()))


def test_every_path_has_a_fixture_with_its_source_cited() -> None:
    readme = (FIXTURES / "README.md").read_text()
    files = {p.name for p in FIXTURES.iterdir() if p.name != "README.md"}
    assert files == {f"{n}.json" for n in PATHS} | set(API_FIXTURES)
    for name in files:
        assert f"`{name}`" in readme, f"{name} has no source row in the README"


@pytest.mark.parametrize("name", sorted(PATHS))
def test_fixture_is_a_valid_object(name: str) -> None:
    obj = _fixture(name)
    kubernetes_validate.validate(obj, "1.30", strict=True)
    api = client.ApiClient()
    out = api._ApiClient__deserialize(obj, MODELS[obj["kind"]])  # type: ignore[attr-defined]
    assert type(out).__name__ == MODELS[obj["kind"]]


def test_kubesim_matches_every_fixture_shape() -> None:
    with start_sim(nodes=None, scenario=SCENARIO, time_scale=100) as sim:
        got = run_paths(sim)
    mismatches = {
        name: (shape(got[name]), shape(_fixture(name)))
        for name in PATHS
        if shape(got[name]) != shape(_fixture(name))
    }
    assert not mismatches, json.dumps(mismatches, indent=1, default=str)


def test_api_server_fixtures_match() -> None:
    """The 410 of an expired continue token and API Priority and Fairness's 429."""
    expected = json.loads((FIXTURES / "continue-expired.status.json").read_text())
    with start_sim(nodes=5) as sim:
        first = json.loads(urllib.request.urlopen(sim.url + "/api/v1/nodes?limit=2").read())
        sim.expire_watches()
        url = sim.url + "/api/v1/nodes?limit=2&continue=" + first["metadata"]["continue"]
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(url)
        got = json.loads(ei.value.read())
        assert ei.value.code == 410
        assert {
            k: got[k] for k in ("kind", "apiVersion", "status", "reason", "code", "message")
        } == {k: expected[k] for k in ("kind", "apiVersion", "status", "reason", "code", "message")}
        assert got["metadata"]["continue"]
        sim.set_faults(http429={"*": 1.0}, retry_after_seconds=1)
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(sim.url + "/api/v1/nodes")
        assert ei.value.code == 429 and ei.value.headers["Retry-After"] == "1"
        assert ei.value.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert ei.value.read() == (FIXTURES / "apf-429.txt").read_bytes()
