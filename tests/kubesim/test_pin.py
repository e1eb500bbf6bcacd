"""kubesim's scheduler honours a node-name pin (matchFields metadata.name), as the DaemonSet
controller writes it (pkg/controller/daemon/util/daemonset_util.go) and the real scheduler's
NodeAffinity plugin narrows to (pkg/scheduler/framework/plugins/nodeaffinity, PreFilter)."""

from __future__ import annotations

from typing import Any

import pytest

from kubesim.scheduler import filter_node, pinned_node

pytestmark = pytest.mark.unit


def pin(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchFields": t} for t in terms]
                }
            }
        }
    }


def name_in(*names: str) -> list[dict[str, Any]]:
    return [{"key": "metadata.name", "operator": "In", "values": list(names)}]


def node(name: str, hostname: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": hostname}},
        "spec": {},
    }


def test_pinned_node_is_the_one_name_the_terms_allow() -> None:
    assert pinned_node(pin(name_in("node-7"))) == "node-7"
    assert pinned_node(pin(name_in("node-7"), name_in("node-7"))) == "node-7"
    assert pinned_node(pin(name_in("a", "b"))) is None
    assert pinned_node(pin(name_in("a"), name_in("b"))) is None
    assert pinned_node({"nodeSelector": {"pool": "x"}}) is None
    not_in = [{"key": "metadata.name", "operator": "NotIn", "values": ["a"]}]
    assert pinned_node(pin(not_in)) is None


def test_filter_matches_the_node_name_not_the_hostname_label() -> None:
    spec = pin(name_in("node-7"))
    assert filter_node(spec, node("node-7", "shared")) is None
    assert filter_node(spec, node("node-8", "node-7")) == (
        "node(s) didn't match Pod's node affinity/selector"
    )
