"""Issue 14: bounded, exact validation of everything a caller sends (no trailing newline, no
Unicode tags, no unbounded digest, capped lists and numbers)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.models import (
    IMAGE_REFERENCE_MAX,
    NODE_SELECTOR_MAX_ENTRIES,
    TOLERATION_SECONDS_MAX,
    TaskSpec,
    Toleration,
    validate_dns1123_subdomain,
    validate_image_reference,
    validate_label_key,
    validate_label_value,
)

pytestmark = pytest.mark.unit

SHA256 = "sha256:" + "a" * 64
SHA384 = "sha384:" + "b" * 96
SHA512 = "sha512:" + "c" * 128


@pytest.mark.parametrize("digest", [SHA256, SHA384, SHA512])
def test_known_digest_algorithms_at_their_exact_length(digest: str) -> None:
    assert validate_image_reference(f"nginx@{digest}") == f"nginx@{digest}"
    assert validate_image_reference(f"nginx:1.27@{digest}")


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + "a" * 63,  # short
        "sha256:" + "a" * 65,  # long
        "sha256:" + "a" * 1_000_000,  # the 1 MB digest of the review
        "sha512:" + "c" * 64,  # the wrong length for the algorithm
        "md5:" + "d" * 32,  # an unknown algorithm
        "sha256+b64u:" + "a" * 64,
        "sha256:" + "A" * 64,  # upper-case hex (OCI: lowercase)
    ],
)
def test_other_digests_are_rejected(digest: str) -> None:
    with pytest.raises(ValueError):
        validate_image_reference(f"nginx@{digest}")


def test_a_reference_is_capped_before_any_parsing() -> None:
    longest = "a" * 255 + ":" + "t" * 128 + "@" + SHA512
    assert len(longest) == IMAGE_REFERENCE_MAX
    assert validate_image_reference(longest) == longest
    with pytest.raises(ValueError, match=f"at most {IMAGE_REFERENCE_MAX}"):
        validate_image_reference("a" * 2_000_000)


@pytest.mark.parametrize("tag", ["\u00e9", "v\uff11", "\u0663", "tag\u00e9x", "\u01c5"])
def test_tags_are_ascii(tag: str) -> None:
    with pytest.raises(ValueError):
        validate_image_reference(f"nginx:{tag}")


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (validate_image_reference, "nginx\n:1"),  # a trailing one is stripped, as before
        (validate_label_key, "pool\n"),
        (validate_label_key, "example.com\n/pool"),
        (validate_label_value, "compute\n"),
        (validate_dns1123_subdomain, "node-1\n"),
    ],
)
def test_no_trailing_newline_anywhere(check: object, value: str) -> None:
    with pytest.raises(ValueError):
        check(value)  # type: ignore[operator]


@pytest.mark.parametrize(
    "body",
    [
        {"nodeSelector": {"pool\n": "a"}},
        {"nodeSelector": {"pool": "a\n"}},
        {"nodeNames": ["node-1\n"]},
        {"imagePullSecrets": ["regcred\n"]},
        {"tolerations": [{"key": "dedicated\n", "operator": "Exists"}]},
        {"tolerations": [{"key": "dedicated", "value": "gpu\n"}]},
        {"tolerations": [{"key": "dedicated", "value": "x" * 64}]},
        {"tolerations": [{"key": "dedicated", "value": "not a label"}]},
        {
            "tolerations": [
                {
                    "key": "dedicated",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": TOLERATION_SECONDS_MAX + 1,
                }
            ]
        },
        {"nodeSelector": {f"k{i}": "v" for i in range(NODE_SELECTOR_MAX_ENTRIES + 1)}},
    ],
)
def test_spec_rejects_hostile_fields(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TaskSpec.model_validate({"images": ["nginx:1"], "batchSize": 1, **body})


def test_bounds_themselves_are_accepted() -> None:
    spec = TaskSpec.model_validate(
        {
            "images": ["nginx:1"],
            "batchSize": 1,
            "nodeSelector": {f"k{i}": "v" for i in range(NODE_SELECTOR_MAX_ENTRIES)},
            "tolerations": [
                {
                    "key": "dedicated",
                    "value": "gpu",
                    "effect": "NoExecute",
                    "tolerationSeconds": TOLERATION_SECONDS_MAX,
                }
            ],
        }
    )
    assert len(spec.node_selector) == NODE_SELECTOR_MAX_ENTRIES
    assert Toleration(key="k", value="").value == ""


def test_node_names_are_capped_in_total() -> None:
    """10,000 long names made a task result over Temporal's 2 MB payload limit (issue 14)."""
    from common.models import NODE_NAMES_MAX_TOTAL_CHARS

    fits = [f"n{i:05d}-" + "x" * 25 for i in range(10_000)]
    assert sum(map(len, fits)) <= NODE_NAMES_MAX_TOTAL_CHARS
    assert TaskSpec(images=["nginx"], batch_size=1, node_names=fits).node_names == fits
    with pytest.raises(ValidationError, match="characters of node names"):
        TaskSpec(images=["nginx"], batch_size=1, node_names=[n + "yyyy" for n in fits])
