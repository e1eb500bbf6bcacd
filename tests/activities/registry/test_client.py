"""The preflight client (activities/registry.py) against real registries (conftest.py)."""

from __future__ import annotations

import base64
import json
import ssl
from typing import Any

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.registry import OCI_INDEX, OCI_MANIFEST, RegistryActivities, RegistryClient
from activities.registry_auth import Credentials
from activities.registry_errors import (
    RegistryNotFound,
    RegistryUnauthorized,
    RegistryUnreachable,
)
from common.preflight import PreflightError, ResolvedImage, ResolveImagesInput
from common.settings import Settings
from tests.activities.registry.conftest import PASSWORD, USER, Served
from tests.activities.registry.regserver import OciImage, free_port

pytestmark = pytest.mark.integration


def ctx(served: Served) -> ssl.SSLContext:
    assert served.registry.ca is not None
    return ssl.create_default_context(cafile=str(served.registry.ca.cert))


def assert_matches(got: ResolvedImage, built: OciImage) -> None:
    """Digest, platforms and per-platform compressed sizes are exactly what was pushed."""
    assert got.error is None, got.message
    assert got.digest == built.digest
    assert got.media_type == built.media_type
    assert sorted((p.os, p.architecture, p.digest, p.compressed_size) for p in got.platforms) == (
        sorted((b.os, b.architecture, b.manifest_digest, b.layers_size) for b in built.platforms)
    )


def dockerconfigjson(host: str, user: str, password: str, *, form: str = "auth") -> dict[str, Any]:
    entry: dict[str, str] = (
        {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        if form == "auth"
        else {"username": user, "password": password}
    )
    raw = json.dumps({"auths": {f"https://{host}": entry}}).encode()
    return {
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(raw).decode()},
    }


async def resolve(image: str, **kw: Any) -> ResolvedImage:
    kw.setdefault("attempts", 1)
    async with RegistryClient(**kw) as c:
        return await c.resolve(image)


# --- digests, platforms, sizes ------------------------------------------------------------


@pytest.mark.parametrize("name", ["single", "multi", "amd64only"])
async def test_resolves_digest_platforms_and_sizes(plain_registry: Served, name: str) -> None:
    got = await resolve(plain_registry.ref(name))
    assert_matches(got, plain_registry.images[name])
    arches = {p.architecture for p in got.platforms}
    assert arches == ({"amd64", "arm64"} if name == "multi" else {"amd64"})
    assert got.media_type == (OCI_MANIFEST if name == "single" else OCI_INDEX)


async def test_resolves_by_digest_and_pins(plain_registry: Served) -> None:
    built = plain_registry.images["multi"]
    repo = f"{plain_registry.registry.host}/team/multi"
    got = await resolve(f"{repo}:1@{built.digest}")
    assert_matches(got, built)
    assert got.pinned == f"{repo}@{built.digest}"


# --- errors with the registry's own message ------------------------------------------------


async def test_unknown_tag_is_not_found_with_registry_message(plain_registry: Served) -> None:
    with pytest.raises(RegistryNotFound) as err:
        await resolve(plain_registry.ref("single", "no-such-tag"))
    assert "MANIFEST_UNKNOWN: manifest unknown" in err.value.message
    assert err.value.status == 404


async def test_unknown_repository_is_not_found_with_registry_message(
    plain_registry: Served,
) -> None:
    """distribution 2.8 answers MANIFEST_UNKNOWN for a repository it never saw, too."""
    with pytest.raises(RegistryNotFound) as err:
        await resolve(f"{plain_registry.registry.host}/team/typo-app:1")
    assert "HTTP 404: MANIFEST_UNKNOWN: manifest unknown" in err.value.message


async def test_no_credentials_is_unauthorized_with_registry_message(tls_registry: Served) -> None:
    with pytest.raises(RegistryUnauthorized) as err:
        await resolve(tls_registry.ref("single"), verify=ctx(tls_registry))
    assert "UNAUTHORIZED: authentication required" in err.value.message
    assert err.value.status == 401


async def test_wrong_password_is_unauthorized(tls_registry: Served) -> None:
    keyring = {tls_registry.registry.host: [Credentials(USER, "wrong")]}
    with pytest.raises(RegistryUnauthorized) as err:
        await resolve(tls_registry.ref("multi"), verify=ctx(tls_registry), keyring=keyring)
    assert "UNAUTHORIZED: authentication required" in err.value.message


async def test_each_secrets_credentials_are_tried_in_turn(tls_registry: Served) -> None:
    """As the kubelet: every matching credential until one works."""
    host = tls_registry.registry.host
    keyring = {host: [Credentials(USER, "wrong"), Credentials(USER, PASSWORD)]}
    got = await resolve(tls_registry.ref("multi"), verify=ctx(tls_registry), keyring=keyring)
    assert_matches(got, tls_registry.images["multi"])


async def test_unreachable_registry(registry_tools: None) -> None:
    with pytest.raises(RegistryUnreachable) as err:
        await resolve(f"127.0.0.1:{free_port()}/team/app:1")
    assert "All connection attempts failed" in err.value.message


async def test_failures_are_recorded_per_image_never_raised(plain_registry: Served) -> None:
    async with RegistryClient(attempts=1) as c:
        got = await c.resolve_all([plain_registry.ref("multi"), plain_registry.ref("nope")])
    assert got[0].error is None and got[0].digest == plain_registry.images["multi"].digest
    assert got[1].error == PreflightError.NOT_FOUND and "manifest unknown" in got[1].message


# --- htpasswd over TLS with a pull secret ---------------------------------------------------


@pytest.mark.parametrize("form", ["auth", "username"])
async def test_htpasswd_credentials_from_dockerconfigjson(tls_registry: Served, form: str) -> None:
    secret = dockerconfigjson(tls_registry.registry.host, USER, PASSWORD, form=form)

    async def read_secret(name: str) -> dict[str, Any] | None:
        return secret if name == "regcred" else None

    acts = RegistryActivities(Settings(), read_secret)
    keyring, warnings = await acts.keyring(["regcred", "absent"])
    assert warnings == ["pull secret 'absent' does not exist"]
    got = await resolve(tls_registry.ref("multi"), verify=ctx(tls_registry), keyring=keyring)
    assert_matches(got, tls_registry.images["multi"])


async def test_tls_without_the_test_ca_is_unreachable_and_never_falls_back_to_http(
    tls_registry: Served,
) -> None:
    """The default trust store does not know the test CA; the registry is on loopback, so
    plain HTTP is tried, and its 400 (an HTTPS server) keeps the TLS error."""
    keyring = {tls_registry.registry.host: [Credentials(USER, PASSWORD)]}
    with pytest.raises(RegistryUnreachable) as err:
        await resolve(tls_registry.ref("single"), keyring=keyring)
    assert "CERTIFICATE_VERIFY_FAILED" in err.value.message


# --- token auth ---------------------------------------------------------------------------


async def test_anonymous_token_auth(token_registry: Served) -> None:
    tokens = token_registry.registry.token
    assert tokens is not None
    before = len(tokens.requests)
    got = await resolve(token_registry.ref("multi"))
    assert_matches(got, token_registry.images["multi"])
    asked = tokens.requests[before:]
    assert asked and all(r["user"] is None for r in asked)
    assert asked[0]["query"]["scope"] == ["repository:public/multi:pull"]
    assert asked[0]["query"]["service"] == ["ips-test-registry"]


async def test_anonymous_token_denied_is_unauthorized(token_registry: Served) -> None:
    with pytest.raises(RegistryUnauthorized) as err:
        await resolve(f"{token_registry.registry.host}/private/single:1")
    assert "UNAUTHORIZED: authentication required" in err.value.message


async def test_token_auth_with_credentials(token_registry: Served) -> None:
    keyring = {token_registry.registry.host: [Credentials(USER, PASSWORD)]}
    got = await resolve(f"{token_registry.registry.host}/private/single:1", keyring=keyring)
    assert_matches(got, token_registry.images["single"])


async def test_token_server_refusal_carries_its_message(token_registry: Served) -> None:
    keyring = {token_registry.registry.host: [Credentials(USER, "wrong")]}
    with pytest.raises(RegistryUnauthorized) as err:
        await resolve(token_registry.ref("single"), keyring=keyring)
    assert "incorrect username or password" in err.value.message


# --- plain HTTP: loopback only, unless configured --------------------------------------------


class Rewrite(httpx.AsyncBaseTransport):
    """Sends `alias` to the real loopback registry and records every URL asked for."""

    def __init__(self, alias: str, target: str) -> None:
        self.alias, self.target = alias, target
        self.seen: list[str] = []
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(str(request.url))
        if request.url.netloc.decode() == self.alias:
            request.url = request.url.copy_with(netloc=self.target.encode())
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_plain_http_on_loopback_names(plain_registry: Served) -> None:
    port = plain_registry.registry.port
    got = await resolve(f"localhost:{port}/team/single:1")
    assert_matches(got, plain_registry.images["single"])


async def test_plain_http_refused_for_non_loopback_registry(plain_registry: Served) -> None:
    alias = f"registry.ips-test:{plain_registry.registry.port}"
    transport = Rewrite(alias, plain_registry.registry.host)
    with pytest.raises(RegistryUnreachable) as err:
        await resolve(f"{alias}/team/single:1", transport=transport)
    assert "INSECURE_REGISTRIES" in err.value.message
    assert transport.seen and all(u.startswith("https://") for u in transport.seen)


@pytest.mark.parametrize("listed", ["host:port", "host"])
async def test_plain_http_allowed_when_listed(plain_registry: Served, listed: str) -> None:
    alias = f"registry.ips-test:{plain_registry.registry.port}"
    transport = Rewrite(alias, plain_registry.registry.host)
    insecure = [alias if listed == "host:port" else "registry.ips-test"]
    got = await resolve(f"{alias}/team/multi:1", transport=transport, insecure_registries=insecure)
    assert_matches(got, plain_registry.images["multi"])
    assert any(u.startswith(f"http://{alias}/v2/team/multi/manifests/") for u in transport.seen)


# --- the activity ---------------------------------------------------------------------------


async def test_resolve_images_activity(token_registry: Served, tmp_path: Any) -> None:
    host = token_registry.registry.host
    secret = dockerconfigjson(host, USER, PASSWORD, form="username")

    async def read_secret(name: str) -> dict[str, Any] | None:
        return secret if name == "regcred" else None

    acts = RegistryActivities(Settings(), read_secret)
    dead = f"127.0.0.1:{free_port()}/team/app:1"
    images = [
        token_registry.ref("multi"),
        f"{host}/private/single:1",
        f"{host}/public/nope:1",
        dead,
    ]
    result = await ActivityEnvironment().run(
        acts.resolve_images,
        ResolveImagesInput(task_id="t-1", images=images, image_pull_secrets=["regcred"]),
    )
    multi, private, missing, unreachable = result.images
    assert_matches(multi, token_registry.images["multi"])
    assert_matches(private, token_registry.images["single"])
    assert missing.error == PreflightError.NOT_FOUND and "manifest unknown" in missing.message
    assert unreachable.error == PreflightError.UNREACHABLE
    assert result.warnings == [f"preflight skipped for {dead}: {unreachable.message}"]
