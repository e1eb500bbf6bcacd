"""The shared wire models: validation rules a client hits first."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from common.models import (
    FailedNodeDetail,
    Pacing,
    Progress,
    TaskSpec,
    TaskStatus,
    Toleration,
    field_path,
    validate_image_reference,
    validate_label_key,
    validate_label_value,
)

pytestmark = pytest.mark.unit

VALID_IMAGES = [
    "nginx",
    "nginx:latest",
    "redis:7",
    "library/nginx:1.27-alpine",
    "ghcr.io/org/team/app:v1.2.3",
    "localhost:5000/app",
    "registry.example.com:443/a/b/c:tag_1.0",
    "busybox@sha256:" + "a" * 64,
    "ghcr.io/a/b:1@sha256:" + "0123456789abcdef" * 4,
    "[::1]:5000/app:1",
    "a__b/c--d.e:x",
]
INVALID_IMAGES = [
    "",
    "Nginx:latest",  # uppercase repository
    "nginx:",  # empty tag
    "nginx:-bad",  # tag must start with a word character
    "nginx@sha256:abc",  # digest too short
    "nginx:" + "x" * 129,  # tag over 128
    "/nginx",
    "nginx/",
    "a//b",
    "nginx latest",
    "nginx:latest:extra",
    "-nginx",
]


@pytest.mark.parametrize("ref", VALID_IMAGES)
def test_valid_image_references(ref: str) -> None:
    assert validate_image_reference(ref) == ref


@pytest.mark.parametrize("ref", INVALID_IMAGES)
def test_invalid_image_references(ref: str) -> None:
    with pytest.raises(ValueError):
        validate_image_reference(ref)


def test_repository_name_length_is_capped() -> None:
    with pytest.raises(ValueError, match="at most 255"):
        validate_image_reference("a" * 256)


@pytest.mark.parametrize(
    "key", ["workload", "kubernetes.io/hostname", "node-role.kubernetes.io/worker", "a_b.c-d"]
)
def test_valid_label_keys(key: str) -> None:
    assert validate_label_key(key) == key


@pytest.mark.parametrize("key", ["", "-a", "a-", "UPPER.io/x", "a/b/c", "x" * 64, "/name", "a/"])
def test_invalid_label_keys(key: str) -> None:
    with pytest.raises(ValueError):
        validate_label_key(key)


@pytest.mark.parametrize("value", ["", "compute", "a.b-c_d", "x" * 63])
def test_valid_label_values(value: str) -> None:
    assert validate_label_value(value) == value


@pytest.mark.parametrize("value", ["-a", "a b", "x" * 64, "a/b"])
def test_invalid_label_values(value: str) -> None:
    with pytest.raises(ValueError):
        validate_label_value(value)


def test_spec_dedupes_images_keeping_order_and_defaults() -> None:
    spec = TaskSpec.model_validate(
        {"images": ["redis:7", "nginx:latest", "redis:7"], "batchSize": 10}
    )
    assert spec.images == ["redis:7", "nginx:latest"]
    assert spec.timeout_seconds == 600
    assert spec.max_failure_ratio == 1.0
    assert spec.strategy == "batch"
    assert spec.image_pull_policy == "IfNotPresent"
    assert spec.node_selector == {}
    assert spec.pacing == Pacing.ADAPTIVE  # today's behaviour unless asked
    dumped = spec.model_dump(mode="json")
    assert dumped["batchSize"] == 10 and "batch_size" not in dumped


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"images": [], "batchSize": 1}, "images"),
        ({"images": ["nginx"] * 1 + [f"img{i}" for i in range(50)], "batchSize": 1}, "images"),
        ({"images": ["nginx"], "batchSize": 0}, "batchSize"),
        ({"images": ["nginx"], "batchSize": 101}, "batchSize"),
        ({"images": ["nginx"]}, "batchSize"),
        ({"images": ["nginx"], "batchSize": 1, "timeoutSeconds": 29}, "timeoutSeconds"),
        ({"images": ["nginx"], "batchSize": 1, "timeoutSeconds": 7201}, "timeoutSeconds"),
        ({"images": ["nginx"], "batchSize": 1, "maxFailureRatio": 1.5}, "maxFailureRatio"),
        ({"images": ["nginx"], "batchSize": 1, "strategy": "fast"}, "strategy"),
        ({"images": ["nginx"], "batchSize": 1, "pacing": "aimd"}, "pacing"),
        ({"images": ["nginx"], "batchSize": 1, "pacing": None}, "pacing"),
        ({"images": ["nginx"], "batchSize": 1, "nodeSelector": {"bad key!": "x"}}, "nodeSelector"),
        ({"images": ["Bad:Ref"], "batchSize": 1}, "images"),
        ({"images": ["nginx"], "batchSize": 1, "batchsize": 3}, "batchsize"),
        ({"images": ["nginx"], "batchSize": 1, "nodeNames": ["Not_A_Node"]}, "nodeNames"),
    ],
)
def test_spec_rejects_bad_input_naming_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        TaskSpec.model_validate(body)
    locs = [str(e["loc"][0]) for e in err.value.errors()]
    assert field in locs


@pytest.mark.parametrize(
    ("tol", "taint", "expected"),
    [
        ({"key": "gpu", "operator": "Exists"}, ("gpu", "x", "NoSchedule"), True),
        ({"key": "gpu", "operator": "Equal", "value": "x"}, ("gpu", "x", "NoSchedule"), True),
        ({"key": "gpu", "operator": "Equal", "value": "y"}, ("gpu", "x", "NoSchedule"), False),
        (
            {"key": "gpu", "operator": "Exists", "effect": "NoExecute"},
            ("gpu", "x", "NoSchedule"),
            False,
        ),
        ({"operator": "Exists"}, ("anything", "x", "NoExecute"), True),
        ({"key": "other", "operator": "Exists"}, ("gpu", "x", "NoSchedule"), False),
    ],
)
def test_toleration_semantics(
    tol: dict[str, str], taint: tuple[str, str, str], expected: bool
) -> None:
    assert Toleration.model_validate(tol).tolerates(*taint) is expected


def test_toleration_rules() -> None:
    with pytest.raises(ValidationError, match="Exists must not set a value"):
        Toleration.model_validate({"key": "a", "operator": "Exists", "value": "b"})
    with pytest.raises(ValidationError, match="Equal needs a key"):
        Toleration.model_validate({"operator": "Equal", "value": "b"})
    with pytest.raises(ValidationError, match="only valid with effect NoExecute"):
        Toleration.model_validate({"key": "a", "effect": "NoSchedule", "tolerationSeconds": 5})


def test_percentage_counts_completed_failed_and_warm() -> None:
    assert Progress.compute_percentage(50, 20, 2, 3) == 50.0
    assert Progress.compute_percentage(0, 0, 0, 0) == 0.0
    assert Progress.compute_percentage(3, 1, 0, 0) == 33.3


def test_timestamps_serialize_as_rfc3339_utc() -> None:
    d = FailedNodeDetail.model_validate(
        {"nodeName": "n", "reason": "Timeout", "timestamp": "2026-01-16T15:15:30"}
    )
    assert d.model_dump(mode="json")["timestamp"].startswith("2026-01-16T15:15:30")
    assert d.timestamp.tzinfo is not None


def test_final_statuses() -> None:
    assert {s for s in TaskStatus if s.is_final} == {"completed", "failed", "cancelled"}


@given(st.lists(st.sampled_from(VALID_IMAGES), min_size=1, max_size=50))
def test_dedupe_is_order_preserving_and_idempotent(images: list[str]) -> None:
    spec = TaskSpec.model_validate({"images": images, "batchSize": 1})
    assert spec.images == list(dict.fromkeys(images))
    assert TaskSpec.model_validate(spec.model_dump(mode="json")).images == spec.images


@pytest.mark.parametrize(
    ("loc", "camel", "expected"),
    [
        (("body", "images", 0), False, "images[0]"),
        (("query", "limit"), False, "limit"),
        (("body",), False, ""),
        (("tolerations", 1, "toleration_seconds"), True, "tolerations[1].tolerationSeconds"),
        (("batch_size",), True, "batchSize"),
    ],
)
def test_field_path_is_the_api_notation(
    loc: tuple[int | str, ...], camel: bool, expected: str
) -> None:
    assert field_path(loc, camel=camel) == expected


@pytest.mark.parametrize("value", ["adaptive", "fixed"])
def test_spec_takes_either_pacing_and_keeps_it_on_the_wire(value: str) -> None:
    spec = TaskSpec.model_validate({"images": ["nginx"], "batchSize": 4, "pacing": value})
    assert spec.pacing == Pacing(value)
    assert spec.model_dump(mode="json")["pacing"] == value
    assert TaskSpec.model_validate(spec.model_dump(mode="json")) == spec  # the workflow's input
