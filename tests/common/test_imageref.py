"""One image normalizer (common/imageref.py) and the already-warm check that uses it (item 7).

`status.images` entries are shaped as the kubelet reports them from containerd's CRI ListImages:
`names` = RepoDigests then RepoTags (pkg/kubelet/nodestatus/setters.go, Images). An image pulled
by `name:tag@sha256:...` is resolved by digest (distribution/reference ParseDockerRef drops the
tag), so containerd records, and the node lists, `name@sha256:...` only.
"""

from __future__ import annotations

from typing import Any

import pytest

from activities.selection import node_has_images, select_nodes
from common.imageref import normalize, parse, same_image, same_repository
from common.models import TaskSpec

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "4f" * 32
OTHER = "sha256:" + "a0" * 32


@pytest.mark.parametrize(
    ("ref", "canonical"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("library/nginx:1.25", "docker.io/library/nginx:1.25"),
        ("docker.io/nginx:1.25", "docker.io/library/nginx:1.25"),
        ("index.docker.io/library/nginx:1.25", "docker.io/library/nginx:1.25"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ("ghcr.io/org/app:1", "ghcr.io/org/app:1"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("[::1]:5000/team/app:2", "[::1]:5000/team/app:2"),
        (f"nginx@{DIGEST}", f"docker.io/library/nginx@{DIGEST}"),
        # ParseDockerRef: with both, the digest names the content and the tag is dropped.
        (f"nginx:1.25@{DIGEST}", f"docker.io/library/nginx@{DIGEST}"),
        (
            f"registry.example.com:5000/t/app:1@{DIGEST}",
            f"registry.example.com:5000/t/app@{DIGEST}",
        ),
        ("  nginx:1.25  ", "docker.io/library/nginx:1.25"),
    ],
)
def test_canonical_form(ref: str, canonical: str) -> None:
    assert normalize(ref) == canonical


def test_invalid_references_compare_only_to_themselves() -> None:
    assert parse("Nginx:1") is None and parse("nginx@sha256:abc") is None
    assert normalize("Nginx:1") == "Nginx:1"
    assert not same_image("Nginx:1", "nginx:1")


def test_same_image_and_same_repository() -> None:
    assert same_image("nginx", "docker.io/library/nginx:latest")
    assert not same_image("nginx:1", "nginx:1.25")
    assert not same_image("app:1", "app:10")
    assert same_repository("nginx:1", f"docker.io/library/nginx@{DIGEST}")
    assert not same_repository("team/app:1", "team/app2:1")


def node(name: str, *entries: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/os": "linux"}},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "images": [{"names": list(names), "sizeBytes": 72_000_000} for names in entries],
        },
    }


def test_a_node_holding_name_at_digest_is_warm_for_name_tag_at_digest() -> None:
    pinned = f"registry.example.com/team/app:1.4@{DIGEST}"
    by_digest = node("a", [f"registry.example.com/team/app@{DIGEST}"])
    by_tag = node(
        "b", [f"registry.example.com/team/app@{DIGEST}", "registry.example.com/team/app:1.4"]
    )
    other_digest = node("c", [f"registry.example.com/team/app@{OTHER}"])
    tag_only = node("d", ["registry.example.com/team/app:1.4"])
    assert node_has_images(by_digest, [pinned])
    assert node_has_images(by_tag, [pinned])
    assert not node_has_images(other_digest, [pinned])
    # The same tag may point at other content now: a tag alone never proves the digest.
    assert not node_has_images(tag_only, [pinned])


def test_docker_hub_forms_are_one_image() -> None:
    n = node(
        "a",
        [f"docker.io/library/nginx@{DIGEST}", "docker.io/library/nginx:1.25"],
        ["docker.io/bitnami/redis:7"],
    )
    assert node_has_images(n, ["nginx:1.25", "bitnami/redis:7"])
    assert node_has_images(n, ["index.docker.io/library/nginx:1.25", f"nginx@{DIGEST}"])
    assert not node_has_images(n, ["nginx"])  # :latest is not :1.25


def test_selection_counts_digest_pinned_images_as_warm() -> None:
    pinned = f"nginx:1.25@{DIGEST}"
    nodes = [node("warm", [f"docker.io/library/nginx@{DIGEST}"]), node("cold")]
    sel = select_nodes(nodes, TaskSpec(images=[pinned], batch_size=1))
    assert (sel.warm, sel.targets) == (1, ["cold"])
