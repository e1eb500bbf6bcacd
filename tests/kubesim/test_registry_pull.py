"""kubesim's kubelet pulling from a real registry (kubesim/registrypull.py): the errors are the
registry's real answers worded as containerd and the kubelet word them, and the digests in
`status.images` and `imageID` are the registry's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from activities.pullmessage import reason_from_message
from common.models import FailureReason
from kubesim.testing import SimHandle
from tests.activities.registry import conftest as registries
from tests.activities.registry.conftest import PASSWORD, USER, Served
from tests.activities.registry.pullsecrets import create_pull_secret
from tests.kubesim.conftest import wait_for
from tests.kubesim.registrysim import (
    pull_error,
    registry_sim,
    run,
    status_names,
    succeeded,
    waiting_reason,
)

# The real registries (tests/activities/registry's session fixtures), registered here too.
layouts, registry_tools, test_ca = registries.layouts, registries.registry_tools, registries.test_ca
tls_registry, token_registry = registries.tls_registry, registries.token_registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_sim(tls_registry: Served) -> Iterator[SimHandle]:
    """The TLS + htpasswd registry, with the node's own credentials (its config.json)."""
    yield from registry_sim(tls_registry, username=USER, password=PASSWORD)


@pytest.fixture(scope="module")
def tls_sim_anonymous(tls_registry: Served) -> Iterator[SimHandle]:
    yield from registry_sim(tls_registry)


@pytest.fixture(scope="module")
def tls_sim_wrong(tls_registry: Served) -> Iterator[SimHandle]:
    yield from registry_sim(tls_registry, username=USER, password="not-the-password")


@pytest.fixture(scope="module")
def token_sim(token_registry: Served) -> Iterator[SimHandle]:
    """The token-auth registry, no node credentials: anonymous or the pod's pull secrets."""
    yield from registry_sim(token_registry)


def test_pulls_carry_the_registry_digest(tls_sim: SimHandle, tls_registry: Served) -> None:
    host = tls_registry.registry.host
    multi = tls_registry.images["multi"]
    for node in ("amd-1", "arm-1"):
        pod = succeeded(tls_sim, run(tls_sim, f"multi-{node}", tls_registry.ref("multi"), node))
        (cs,) = pod["status"]["containerStatuses"]
        assert cs["imageID"] == f"{host}/team/multi@{multi.digest}"

        def listed(node: str = node) -> list[list[str]] | None:
            names = status_names(tls_sim, node)
            return names if names else None

        names = wait_for(listed, 30, f"{node}'s status.images")
        assert [f"{host}/team/multi@{multi.digest}", f"{host}/team/multi:1"] in names
    # a single-platform manifest (not an index): its own digest; containerd does not filter it
    single = tls_registry.images["single"]
    succeeded(tls_sim, run(tls_sim, "single-arm", tls_registry.ref("single"), "arm-1"))
    wait_for(
        lambda: any(
            f"{host}/team/single@{single.digest}" in n for n in status_names(tls_sim, "arm-1")
        ),
        30,
        "the single image in arm-1's status",
    )
    sizes = {
        tuple(i["names"]): i["sizeBytes"]
        for n in tls_sim.objects("nodes")
        if n["metadata"]["name"] == "amd-1"
        for i in n["status"]["images"]
    }
    amd = next(p for p in multi.platforms if p.architecture == "amd64")
    (size,) = [s for names, s in sizes.items() if names[0].endswith(multi.digest)]
    assert size > amd.layers_size  # index + manifest + config + layers, compressed


def test_missing_image_is_not_found(tls_sim: SimHandle, tls_registry: Served) -> None:
    image = tls_registry.ref("nope")
    msg = pull_error(tls_sim, run(tls_sim, "nope", image, "amd-1"), image)
    assert msg == (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
        f'failed to resolve reference "{image}": {image}: not found'
    )
    assert reason_from_message(f'Failed to pull image "{image}": {msg}', image) == (
        FailureReason.IMAGE_NOT_FOUND
    )
    wait_for(lambda: waiting_reason(tls_sim, "nope") == "ImagePullBackOff", 30, "back-off")


def test_platform_the_index_lacks(tls_sim: SimHandle, tls_registry: Served) -> None:
    image = tls_registry.ref("amd64only")
    msg = pull_error(tls_sim, run(tls_sim, "amd64only-arm", image, "arm-1"), image)
    assert msg == (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
        "no match for platform in manifest: not found"
    )
    assert reason_from_message(f'Failed to pull image "{image}": {msg}', image) == (
        FailureReason.NO_MATCHING_PLATFORM
    )
    succeeded(tls_sim, run(tls_sim, "amd64only-amd", image, "amd-1"))


def test_basic_auth_without_credentials(tls_sim_anonymous: SimHandle, tls_registry: Served) -> None:
    image = tls_registry.ref("single")
    msg = pull_error(tls_sim_anonymous, run(tls_sim_anonymous, "anon", image, "amd-1"), image)
    assert msg == (
        f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": '
        f'failed to resolve reference "{image}": pull access denied, repository does not '
        "exist or may require authorization: authorization failed: no basic auth credentials"
    )
    assert reason_from_message(msg, image) == FailureReason.UNAUTHORIZED


def test_basic_auth_wrong_password(tls_sim_wrong: SimHandle, tls_registry: Served) -> None:
    image = tls_registry.ref("single")
    msg = pull_error(tls_sim_wrong, run(tls_sim_wrong, "wrong", image, "amd-1"), image)
    url = f"{tls_registry.registry.url}/v2/team/single/manifests/1"
    assert msg == (
        f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": '
        f'failed to resolve reference "{image}": unexpected status from HEAD request to '
        f"{url}: 401 Unauthorized"
    )
    assert reason_from_message(msg, image) == FailureReason.UNAUTHORIZED


def test_token_auth_anonymous_and_pull_secrets(
    token_sim: SimHandle, token_registry: Served
) -> None:
    host = token_registry.registry.host
    # anonymous pull is allowed on public/*
    succeeded(token_sim, run(token_sim, "public", token_registry.ref("single"), "amd-1"))
    # not on private/*: the registry's second 401 says insufficient_scope
    private = f"{host}/private/single:1"
    msg = pull_error(token_sim, run(token_sim, "private-anon", private, "amd-1"), private)
    assert msg == (
        f'rpc error: code = Unknown desc = failed to pull and unpack image "{private}": '
        f'failed to resolve reference "{private}": pull access denied, repository does not '
        "exist or may require authorization: server message: insufficient_scope: "
        "authorization failed"
    )
    assert reason_from_message(msg, private) == FailureReason.UNAUTHORIZED
    # the pod's pull secret unlocks it; the digest is the registry's
    create_pull_secret(token_sim, "good", host, USER, PASSWORD)
    pod = succeeded(
        token_sim,
        run(token_sim, "private-good", private, "amd-1", imagePullSecrets=[{"name": "good"}]),
    )
    digest = token_registry.images["single"].digest
    assert pod["status"]["containerStatuses"][0]["imageID"] == f"{host}/private/single@{digest}"
    # a secret the token realm refuses: containerd's token error, one per credential tried
    create_pull_secret(token_sim, "bad", host, USER, "not-the-password")
    msg = pull_error(
        token_sim,
        run(token_sim, "private-bad", private, "arm-1", imagePullSecrets=[{"name": "bad"}]),
        private,
    )
    assert f'failed to resolve reference "{private}": failed to authorize: failed to fetch ' in msg
    assert "oauth token: unexpected status from GET request to " in msg
    assert msg.endswith(": 401 Unauthorized")
    assert reason_from_message(msg, private) == FailureReason.UNAUTHORIZED


def test_a_moved_tag_gives_each_node_its_own_digest(
    tls_sim: SimHandle, tls_registry: Served
) -> None:
    """The digest is per node, as the node's own image store: a tag pushed again between two
    pulls leaves two nodes with different bits under the same name (what pinning prevents)."""
    reg, host = tls_registry.registry, tls_registry.registry.host
    single, multi = tls_registry.images["single"], tls_registry.images["multi"]
    image = f"{host}/team/moving:1"
    reg.push(single.layout, "1", "team/moving")
    first = succeeded(tls_sim, run(tls_sim, "moving-amd", image, "amd-1"))
    reg.push(multi.layout, "1", "team/moving")
    second = succeeded(tls_sim, run(tls_sim, "moving-arm", image, "arm-1"))
    assert first["status"]["containerStatuses"][0]["imageID"] == (
        f"{host}/team/moving@{single.digest}"
    )
    assert second["status"]["containerStatuses"][0]["imageID"] == (
        f"{host}/team/moving@{multi.digest}"
    )
    for node, digest in (("amd-1", single.digest), ("arm-1", multi.digest)):
        wait_for(
            lambda node=node, digest=digest: (
                [f"{host}/team/moving@{digest}", image] in status_names(tls_sim, node)
            ),
            30,
            f"{node}'s status to list its own digest",
        )
