"""Unit tests: the store's per-kind history, selectors, image references, protobuf bodies."""

from __future__ import annotations

import pytest

from kubesim import images
from kubesim.protobuf import decode_object
from kubesim.selectors import (
    SelectorError,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from kubesim.store import Store

pytestmark = pytest.mark.unit


def _obj(kind: str, name: str) -> dict:
    return {"kind": kind, "metadata": {"name": name, "namespace": "default"}}


def test_history_is_per_kind_and_compacts() -> None:
    s = Store(history=3)
    s.create("Pod", _obj("Pod", "p1"))
    rv_after_pod = s.rv
    for i in range(10):
        s.create("Event", _obj("Event", f"e{i}"))
    assert s.compacted_rv("Pod") == 0  # Event churn does not push Pod history out
    assert s.compacted_rv("Event") > rv_after_pod
    s.create("Pod", _obj("Pod", "p2"))
    assert [e.entry.obj["metadata"]["name"] for e in s.events_since("Pod", rv_after_pod)] == ["p2"]
    s.compact()
    assert s.compacted_rv("Pod") == s.rv and s.compacted_rv("Job") == s.rv


def test_resource_versions_are_monotonic_across_kinds() -> None:
    s = Store()
    rvs = [
        int(s.create(k, _obj(k, "x")).obj["metadata"]["resourceVersion"])
        for k in ("Pod", "Job", "Node")
    ]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3


@pytest.mark.parametrize(
    ("selector", "labels", "ok"),
    [
        ("a=b", {"a": "b"}, True),
        ("a!=b", {}, True),
        ("a!=b", {"a": "b"}, False),
        ("a in (b, c)", {"a": "c"}, True),
        ("a notin (b,c)", {"a": "d"}, True),
        ("a notin (b,c)", {}, True),
        ("a", {"a": ""}, True),
        ("!a", {"a": "x"}, False),
        ("a=b,c in (d)", {"a": "b", "c": "d"}, True),
        ("example.com/key=v", {"example.com/key": "v"}, True),
    ],
)
def test_label_selector_semantics(selector: str, labels: dict[str, str], ok: bool) -> None:
    assert labels_match(parse_label_selector(selector), labels) is ok


@pytest.mark.parametrize("bad", ["a in (", "a=b=c", "a in ()", "=b", "a=" + "x" * 64])
def test_bad_label_selectors(bad: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(bad)


def test_field_selector_rejects_unknown_fields() -> None:
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.x"):
        parse_field_selector("spec.x=1", frozenset({"metadata.name"}), "Pod")


def test_image_normalization() -> None:
    assert images.normalize("nginx") == "docker.io/library/nginx:latest"
    assert images.normalize("redis:7") == "docker.io/library/redis:7"
    assert images.normalize("team/app:1") == "docker.io/team/app:1"
    assert images.normalize("registry.example.com/a/b:2") == "registry.example.com/a/b:2"
    assert images.normalize("localhost:5000/a:1") == "localhost:5000/a:1"
    names = images.image_names("nginx:latest")
    assert (
        names[0].startswith("docker.io/library/nginx@sha256:")
        and names[1] == "docker.io/library/nginx:latest"
    )
    assert images.image_names("a@sha256:" + "0" * 64) == ["docker.io/library/a@sha256:" + "0" * 64]


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _ld(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _vi(num: int, value: int) -> bytes:
    return _varint(num << 3) + _varint(value)


def test_protobuf_job_body() -> None:
    """The envelope and field numbers kubectl's typed client uses for `create job`."""
    container = _ld(1, b"c") + _ld(2, b"busybox") + _ld(3, b"true") + _ld(14, b"")
    pod_spec = _ld(2, container) + _ld(3, b"Never")
    template = _ld(1, b"") + _ld(2, pod_spec)
    spec = _ld(6, template) + _vi(7, 0)
    meta = _ld(1, b"x") + _ld(11, _ld(1, b"k") + _ld(2, b"v"))
    job = _ld(1, meta) + _ld(2, spec)
    envelope = b"k8s\x00" + _ld(1, _ld(1, b"batch/v1") + _ld(2, b"Job")) + _ld(2, job)
    obj = decode_object(envelope)
    assert obj["kind"] == "Job" and obj["apiVersion"] == "batch/v1"
    assert obj["metadata"] == {"name": "x", "labels": {"k": "v"}}
    assert obj["spec"]["backoffLimit"] == 0
    c = obj["spec"]["template"]["spec"]["containers"][0]
    assert c == {"name": "c", "image": "busybox", "command": ["true"]}
