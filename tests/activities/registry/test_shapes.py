"""Answers the test registry does not give (distribution 2.8 never sends Docker media types
from an OCI push, 429s or attestation entries): Docker Hub-shaped indexes, rate limits, 5xx
and malformed answers, served by httpx.MockTransport."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from activities.registry import DOCKER_LIST, DOCKER_MANIFEST, RegistryClient
from activities.registry_errors import RegistryUnreachable

pytestmark = pytest.mark.unit

HOST = "r.example.com"
Handler = Callable[[httpx.Request], httpx.Response]


def digest(doc: dict[str, Any]) -> tuple[bytes, str]:
    raw = json.dumps(doc).encode()
    return raw, f"sha256:{hashlib.sha256(raw).hexdigest()}"


def manifest(sizes: list[int]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"digest": "sha256:" + "0" * 64, "size": 10},
        "layers": [{"digest": "sha256:" + f"{i}" * 64, "size": s} for i, s in enumerate(sizes)],
    }


AMD, AMD_D = digest(manifest([100, 23]))
ARM, ARM_D = digest(manifest([90]))
ATT, ATT_D = digest(manifest([5]))
INDEX, INDEX_D = digest(
    {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": AMD_D, "size": len(AMD),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": DOCKER_MANIFEST, "digest": ARM_D, "size": len(ARM),
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            {"mediaType": DOCKER_MANIFEST, "digest": ATT_D, "size": len(ATT),
             "platform": {"architecture": "unknown", "os": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
        ],
    }
)  # fmt: skip
BODIES = {"1": (INDEX, DOCKER_LIST), AMD_D: (AMD, DOCKER_MANIFEST), ARM_D: (ARM, DOCKER_MANIFEST)}


def registry(override: Handler | None = None) -> tuple[httpx.MockTransport, list[str]]:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.scheme}://{request.url.host}{request.url.path}")
        if override is not None:
            resp = override(request)
            if resp.status_code != 0:
                return resp
        if request.url.path == "/v2/":
            return httpx.Response(200)
        ref = request.url.path.rsplit("/", 1)[-1]
        body, media_type = BODIES[ref]
        return httpx.Response(200, content=body, headers={"Content-Type": media_type})

    return httpx.MockTransport(handle), seen


async def test_docker_manifest_list_with_an_attestation_entry() -> None:
    transport, seen = registry()
    async with RegistryClient(transport=transport, attempts=1) as c:
        got = await c.resolve(f"{HOST}/team/app:1")
    assert got.digest == INDEX_D and got.media_type == DOCKER_LIST
    assert [(p.architecture, p.variant, p.digest, p.compressed_size) for p in got.platforms] == [
        ("amd64", None, AMD_D, 123),
        ("arm64", "v8", ARM_D, 90),
    ]
    assert not any(ATT_D in u for u in seen)  # the attestation manifest is never fetched


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, {"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]},
         "HTTP 429: TOOMANYREQUESTS: slow down"),
        (503, None, "HTTP 503: Service Unavailable"),
    ],
)  # fmt: skip
async def test_rate_limits_and_server_errors_are_unreachable_after_retries(
    status: int, body: Any, expected: str
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        if "/manifests/" in request.url.path:
            return httpx.Response(status, json=body) if body else httpx.Response(status)
        return httpx.Response(0)

    transport, seen = registry(fail)
    async with RegistryClient(transport=transport, attempts=2) as c:
        with pytest.raises(RegistryUnreachable) as err:
            await c.resolve(f"{HOST}/team/app:1")
    assert expected in err.value.message
    assert sum("/manifests/1" in u for u in seen) == 2


async def test_malformed_manifest_is_unreachable() -> None:
    def garbage(request: httpx.Request) -> httpx.Response:
        if "/manifests/" in request.url.path:
            return httpx.Response(200, content=b"<html>", headers={"Content-Type": DOCKER_LIST})
        return httpx.Response(0)

    transport, _ = registry(garbage)
    async with RegistryClient(transport=transport, attempts=1) as c:
        with pytest.raises(RegistryUnreachable, match="invalid JSON"):
            await c.resolve(f"{HOST}/team/app:1")


async def test_docker_hub_names_use_its_api_host() -> None:
    transport, seen = registry()
    async with RegistryClient(transport=transport, attempts=1) as c:
        got = await c.resolve("team/app:1")
    assert got.digest == INDEX_D
    assert seen[0] == "https://registry-1.docker.io/v2/"
    assert "https://registry-1.docker.io/v2/team/app/manifests/1" in seen
