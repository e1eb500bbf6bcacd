"""The registry client of the preflight: resolve image references (the OCI distribution API).

A small client on httpx (docs/engine.md, "Preflight", says why not `oras`). For each image it
records the digest it resolved to, the platforms it offers (an index, or one manifest whose
config names its platform) and the compressed size per platform (the sum of the manifest's
layer sizes). Errors are typed: `RegistryNotFound` and `RegistryUnauthorized` carry the
registry's own message; anything without a usable answer (no connection, TLS, 5xx, 429) is
`RegistryUnreachable`, after a few quick retries.

Auth follows the distribution token spec: a 401 with `WWW-Authenticate: Bearer realm,service,
scope` sends the client to the realm (anonymously, or with Basic credentials from the task's
pull secrets), and the token it returns is sent as `Authorization: Bearer`; a `Basic`
challenge gets the credentials directly. The transport tries HTTPS first; plain HTTP only for
loopback registries or those in INSECURE_REGISTRIES (activities/registry_auth.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
from pathlib import Path
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from activities.registry_auth import (
    DOCKER_HUB,
    Credentials,
    Keyring,
    parse_challenge,
    plain_http_allowed,
    registry_key,
)
from activities.registry_errors import (
    RegistryError,
    RegistryNotFound,
    RegistryUnauthorized,
    RegistryUnreachable,
    error_for,
)
from common.imageref import ParsedRef, parse
from common.preflight import ImagePlatform, ResolvedImage

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))
# Docker Hub serves the API of `docker.io` references on this host (as Docker and containerd do).
DOCKER_HUB_API = "registry-1.docker.io"
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the distribution spec's recommended manifest limit


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system roots, plus the given CA bundle (REGISTRY_CA_FILE)."""
    ctx = ssl.create_default_context()
    if ca_file is not None:
        ctx.load_verify_locations(cafile=str(ca_file))
    return ctx


class RegistryClient:
    """One client per preflight; tokens and each host's scheme are cached for its lifetime."""

    def __init__(
        self,
        *,
        keyring: Keyring | None = None,
        insecure_registries: list[str] | None = None,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        attempts: int = 3,
    ) -> None:
        self.keyring = keyring or {}
        self.insecure = list(insecure_registries or [])
        self.attempts = attempts
        self.http = httpx.AsyncClient(
            verify=verify, transport=transport, timeout=TIMEOUT, follow_redirects=True
        )
        self._base: dict[str, str] = {}
        self._auth: dict[tuple[str, str, Credentials | None], str] = {}

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- public -------------------------------------------------------------------------

    async def resolve_all(self, images: list[str]) -> list[ResolvedImage]:
        """Every image, concurrently; a failure is recorded on its image, never raised."""
        return list(await asyncio.gather(*(self._resolve_recorded(i) for i in images)))

    async def _resolve_recorded(self, image: str) -> ResolvedImage:
        try:
            return await self.resolve(image)
        except RegistryError as err:
            return ResolvedImage(image=image, error=err.kind, message=err.message)

    async def resolve(self, image: str) -> ResolvedImage:
        """Digest, platforms and sizes of one image; raises a RegistryError."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(RegistryUnreachable),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.5, max=4),
            reraise=True,
        ):
            with attempt:
                return await self._resolve_once(image)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- resolving ----------------------------------------------------------------------

    async def _resolve_once(self, image: str) -> ResolvedImage:
        ref = parse(image)
        if ref is None:
            raise RegistryNotFound(f"{image}: not a valid image reference")
        host = DOCKER_HUB_API if ref.domain == DOCKER_HUB else ref.domain
        what = f"{ref.name}:{ref.tag or 'latest'}" if not ref.digest else ref.canonical()
        candidates: list[Credentials | None] = [*self.keyring.get(registry_key(ref.domain), [])]
        for i, creds in enumerate(candidates or [None]):
            try:
                return await self._resolve_with(image, ref, host, creds, what)
            except RegistryUnauthorized:
                if i + 1 >= len(candidates):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _resolve_with(
        self, image: str, ref: ParsedRef, host: str, creds: Credentials | None, what: str
    ) -> ResolvedImage:
        reference = ref.digest or ref.tag or "latest"
        resp = await self._get(host, creds, ref.path, f"manifests/{reference}", what, ACCEPT)
        body = resp.content
        digest = ref.digest or f"sha256:{hashlib.sha256(body).hexdigest()}"
        doc = self._json(body, what)
        media_type = doc.get("mediaType") or resp.headers.get("content-type", "").split(";")[0]
        if media_type in INDEX_TYPES:
            platforms = await self._index_platforms(host, creds, ref.path, doc, what)
        elif media_type in MANIFEST_TYPES:
            platforms = [await self._single_platform(host, creds, ref.path, doc, digest, what)]
        else:
            raise RegistryUnreachable(f"{what}: unsupported manifest type {media_type!r}")
        return ResolvedImage(image=image, digest=digest, media_type=media_type, platforms=platforms)

    async def _index_platforms(
        self, host: str, creds: Credentials | None, repo: str, index: dict[str, Any], what: str
    ) -> list[ImagePlatform]:
        entries = []
        for desc in index.get("manifests") or []:
            plat = desc.get("platform") or {}
            annotations = desc.get("annotations") or {}
            # BuildKit's attestation manifests are `unknown/unknown`; they are not images.
            if plat.get("os") in (None, "unknown") or "vnd.docker.reference.type" in annotations:
                continue
            if desc.get("mediaType") not in MANIFEST_TYPES:
                continue
            entries.append(desc)

        async def one(desc: dict[str, Any]) -> ImagePlatform:
            resp = await self._get(host, creds, repo, f"manifests/{desc['digest']}", what, ACCEPT)
            manifest = self._json(resp.content, what)
            plat = desc["platform"]
            return ImagePlatform(
                os=plat["os"],
                architecture=plat.get("architecture", ""),
                variant=plat.get("variant"),
                digest=desc["digest"],
                compressed_size=_layers_size(manifest),
            )

        return list(await asyncio.gather(*(one(d) for d in entries)))

    async def _single_platform(
        self,
        host: str,
        creds: Credentials | None,
        repo: str,
        manifest: dict[str, Any],
        digest: str,
        what: str,
    ) -> ImagePlatform:
        config_digest = (manifest.get("config") or {}).get("digest")
        if not config_digest:
            raise RegistryUnreachable(f"{what}: manifest has no config")
        resp = await self._get(host, creds, repo, f"blobs/{config_digest}", what, "*/*")
        config = self._json(resp.content, what)
        return ImagePlatform(
            os=config.get("os", ""),
            architecture=config.get("architecture", ""),
            variant=config.get("variant"),
            digest=digest,
            compressed_size=_layers_size(manifest),
        )

    @staticmethod
    def _json(body: bytes, what: str) -> dict[str, Any]:
        if len(body) > MAX_MANIFEST_BYTES:
            raise RegistryUnreachable(f"{what}: document larger than {MAX_MANIFEST_BYTES} bytes")
        try:
            doc = json.loads(body)
        except ValueError:
            raise RegistryUnreachable(f"{what}: registry answered with invalid JSON") from None
        if not isinstance(doc, dict):
            raise RegistryUnreachable(f"{what}: registry answered with a non-object")
        return doc

    # --- transport and auth -------------------------------------------------------------

    async def _base_url(self, host: str) -> str:
        """`https://host`, or `http://host` when HTTPS fails and plain HTTP is allowed."""
        if host in self._base:
            return self._base[host]
        try:
            await self.http.get(f"https://{host}/v2/")
            self._base[host] = f"https://{host}"
        except httpx.TransportError as tls_exc:
            if not plain_http_allowed(host, self.insecure):
                raise RegistryUnreachable(
                    f"{host}: {type(tls_exc).__name__}: {tls_exc or 'no answer'} (plain HTTP is "
                    "allowed only for loopback registries and those in INSECURE_REGISTRIES)"
                ) from None
            try:
                resp = await self.http.get(f"http://{host}/v2/")
            except httpx.TransportError as exc:
                raise RegistryUnreachable(
                    f"{host}: https: {tls_exc or type(tls_exc).__name__}; "
                    f"http: {exc or type(exc).__name__}"
                ) from None
            if resp.status_code == httpx.codes.BAD_REQUEST:  # an HTTPS server spoken to in HTTP
                raise RegistryUnreachable(
                    f"{host}: https: {tls_exc or type(tls_exc).__name__}"
                ) from None
            self._base[host] = f"http://{host}"
        return self._base[host]

    async def _get(
        self, host: str, creds: Credentials | None, repo: str, path: str, what: str, accept: str
    ) -> httpx.Response:
        base = await self._base_url(host)
        scope = f"repository:{repo}:pull"
        url = f"{base}/v2/{repo}/{path}"
        for attempt in range(2):
            headers = {"Accept": accept}
            if (host, scope, creds) in self._auth:
                headers["Authorization"] = self._auth[(host, scope, creds)]
            try:
                resp = await self.http.get(url, headers=headers)
            except httpx.TransportError as exc:
                raise RegistryUnreachable(f"{what}: {type(exc).__name__}: {exc}") from None
            if resp.status_code == httpx.codes.UNAUTHORIZED and attempt == 0:
                challenge = parse_challenge(resp.headers.get("www-authenticate"))
                if challenge is not None and await self._authorize(
                    host, creds, scope, challenge.scheme, challenge.params, what
                ):
                    continue
            if resp.is_success:
                return resp
            raise error_for(resp, what)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _authorize(
        self,
        host: str,
        creds: Credentials | None,
        scope: str,
        scheme: str,
        params: dict[str, str],
        what: str,
    ) -> bool:
        """Set the Authorization for (host, scope, creds) from a challenge; False when there
        is nothing to try (Basic with no credentials, an unknown scheme)."""
        if scheme == "basic":
            if creds is None:
                return False
            self._auth[(host, scope, creds)] = _basic(creds)
            return True
        if scheme != "bearer" or not params.get("realm"):
            return False
        realm = httpx.URL(params["realm"])
        if realm.scheme == "http" and not plain_http_allowed(realm.netloc.decode(), self.insecure):
            raise RegistryUnreachable(
                f"{what}: token realm {params['realm']} is plain HTTP on a non-loopback host "
                "(list it in INSECURE_REGISTRIES to allow it)"
            )
        query = {"scope": params.get("scope") or scope}
        if params.get("service"):
            query["service"] = params["service"]
        headers = {"Authorization": _basic(creds)} if creds else {}
        try:
            resp = await self.http.get(realm, params=query, headers=headers)
        except httpx.TransportError as exc:
            raise RegistryUnreachable(f"{what}: token: {type(exc).__name__}: {exc}") from None
        if not resp.is_success:
            raise error_for(resp, f"{what}: token")
        body = self._json(resp.content, f"{what}: token")
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryUnreachable(f"{what}: token server answered without a token")
        self._auth[(host, scope, creds)] = f"Bearer {token}"
        return True


def _basic(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _layers_size(manifest: dict[str, Any]) -> int:
    return sum(int(layer.get("size") or 0) for layer in manifest.get("layers") or [])
