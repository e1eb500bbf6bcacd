"""kubesim's output for each path of issue 11 has the shape of its golden fixture in
tests/fixtures/real/ (phase, conditions, reasons, messages, exit codes, counts); the fixtures
themselves are valid objects (official schema, official client). Sources: the README there."""

from __future__ import annotations

import json
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
MODELS = {"Pod": "V1Pod", "Job": "V1Job", "Event": "CoreV1Event", "Node": "V1Node"}


def _fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{name}.json").read_text()))


def test_every_path_has_a_fixture_with_its_source_cited() -> None:
    readme = (FIXTURES / "README.md").read_text()
    files = {p.name.removesuffix(".json") for p in FIXTURES.glob("*.json")}
    assert files == set(PATHS)
    for name in PATHS:
        assert f"`{name}.json`" in readme, f"{name}.json has no source row in the README"


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
