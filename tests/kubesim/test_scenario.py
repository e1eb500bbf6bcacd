"""Scenario files: validation, scaling, and reproducible placement for a seed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kubesim.node_objects import build_nodes
from kubesim.scenario import load_scenario, parse_bytes

pytestmark = pytest.mark.unit


def _placement(seed: int, n: int = 50) -> dict[str, tuple[bool, bool, tuple[str, ...]]]:
    nodes = build_nodes(load_scenario(None).scaled(n), seed, "2026-01-01T00:00:00Z")
    return {
        x["metadata"]["name"]: (
            bool(x["spec"].get("unschedulable")),
            x["status"]["conditions"][-1]["status"] != "True",
            tuple(x["_kubesim"]["warm"]),
        )
        for x in nodes
    }


def test_default_scenario_placement_is_reproducible() -> None:
    a, b, c = _placement(0), _placement(0), _placement(1)
    assert a == b
    assert a != c
    assert sum(v[0] for v in a.values()) == 1 and sum(v[1] for v in a.values()) == 1


@pytest.mark.parametrize("n", [3, 50, 137, 5000])
def test_scaling_keeps_one_not_ready_and_one_cordoned(n: int) -> None:
    p = _placement(0, n)
    assert len(p) == n
    assert sum(v[0] for v in p.values()) == 1 and sum(v[1] for v in p.values()) == 1


def test_unknown_images_get_the_default_size() -> None:
    s = load_scenario(None)
    assert s.image("nginx:latest").size == 72 * 1024**2
    img = s.image("quay.example.com/some/app:v9")
    assert img.size == s.defaults.image_size and img.shell and not img.not_found


def test_scenario_validation_names_the_field(tmp_path: object) -> None:
    with pytest.raises(ValidationError) as ei:
        load_scenario({"nodeGroups": [{"name": "a", "count": -1}]})
    assert "nodeGroups" in str(ei.value) and "count" in str(ei.value)
    with pytest.raises(ValidationError):
        load_scenario({"nodeGroups": [{"name": "a", "count": 1, "arch": "sparc"}]})
    with pytest.raises(ValidationError):
        load_scenario({"nodeGroups": [{"name": "a", "count": 1}], "bogus": 1})
    with pytest.raises(ValidationError):
        load_scenario({"images": [{"name": "x", "size": "lots"}]})


def test_json_and_yaml_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "s.json").write_text('{"nodeGroups": [{"name": "j", "count": 2}]}')
    (tmp_path / "s.yaml").write_text(
        "nodeGroups:\n  - {name: y, count: 4, pullBandwidth: 10MB/s}\n"
    )
    assert load_scenario(tmp_path / "s.json").node_groups[0].count == 2
    assert load_scenario(tmp_path / "s.yaml").node_groups[0].pull_bandwidth == 10_000_000


def test_parse_bytes() -> None:
    assert parse_bytes("50MiB") == 50 * 1024**2
    assert parse_bytes("100MB/s") == 100_000_000
    assert parse_bytes(123) == 123
    with pytest.raises(ValueError):
        parse_bytes("ten")
