"""The kubelet's pulls from a real registry (scenario `registries:`), worded as containerd's CRI
plugin and the kubelet word them, so not-found, unauthorized, platform and 429 errors come from
the registry's real answers and `status.images` carry the real digests.

What is modelled, and where it comes from (containerd v2, kubernetes v1.33):

- Resolve: `core/remotes/docker/resolver.go` `dockerResolver.Resolve`: HEAD
  `/v2/<repo>/manifests/<tag|digest>`; 404 is `<ref>: not found` (errdefs.ErrNotFound, gRPC
  `NotFound`); any other status above 399 is `unexpectedResponseErr` ->
  `core/remotes/errors` `ErrUnexpectedStatus`: `unexpected status from HEAD request to <url>:
  <status>` (a HEAD has no body, so no registry message follows).
- Retries: `request.retryRequest`: 401 goes to the authorizer, 408 and 429 are retried (at most
  `maxAttempts` = 5 requests in all), 500/503/504 once unless the same status repeats.
- Auth: `core/remotes/docker/authorizer.go` `dockerAuthorizer.AddResponses`: a Bearer challenge
  fetches a token (`auth.FetchToken`, GET realm?scope=repository:<repo>:pull&service=...,
  with basic credentials when there are some; the OAuth POST that containerd tries first with
  credentials is not modelled: kubesim goes straight to the GET fallback it uses when POST
  answers 404/401/400); a second Bearer 401 carrying `error=` is `invalidAuthorization`:
  `server message: <error>: authorization failed`; a Basic challenge without credentials is
  `authorization failed: no basic auth credentials`. Resolve prefixes both
  `pull access denied, repository does not exist or may require authorization: `. A token the
  realm refuses is `failed to authorize: failed to fetch anonymous|oauth token: unexpected
  status from GET request to <realm url>: <status>` (`authHandler.doBearerAuth`).
- Platform: `client/pull.go` `Client.fetch` with `images.FilterPlatforms` and
  `core/images/handlers.go` `LimitManifests`: an index without the node's os/arch is `no match
  for platform in manifest: not found` (gRPC `NotFound`). A single manifest is never filtered
  (containerd pulls it on any node; running it would fail with `exec format error`, which
  kubesim's no-op containers do not model).
- Wrapping: `client/pull.go` `failed to resolve reference "<ref>": ...`;
  `internal/cri/server/images/image_pull.go` `failed to pull and unpack image "<ref>": ...`;
  the CRI's gRPC status `rpc error: code = <code> desc = ...`.
- Credentials: `pkg/kubelet/kuberuntime/kuberuntime_image.go` `PullImage`: the pod's
  imagePullSecrets (dockerconfigjson, matched on the registry host) and then the node's own
  (the scenario registry's `username`/`password`, the kubelet's config.json) are tried in turn;
  no credentials at all pulls anonymously; when every one fails the errors are aggregated
  (`utilerrors.NewAggregate`: `[e1, e2]`).

Only manifests are fetched (HEAD, the manifest or index, the platform's manifest); layers are
not downloaded. The pull's duration stays the scenario's model (image_pulls.pull_seconds); the
size reported (Pulled event, `status.images[].sizeBytes`) is the real one: every manifest
fetched plus the config and the layers, compressed, as containerd's image size.

All nodes share the loopback address, so each request carries the node's InternalIP in
`X-Forwarded-For`; a fault proxy (ratelimit_proxy.py) keys on it as a registry keys on the
client's address.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from kubesim import images as img
from kubesim import nodes
from kubesim.scenario import Registry

if TYPE_CHECKING:
    from kubesim.cluster import Cluster
    from kubesim.state import NodeState

MAX_ATTEMPTS = 5  # core/remotes/docker/resolver.go `maxAttempts`
INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
ACCEPT = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "*/*",
    ]
)
_CHALLENGE = re.compile(r'([A-Za-z]+)\s+((?:[a-zA-Z_]+="[^"]*"\s*,?\s*)*)')
_PARAM = re.compile(r'([a-zA-Z_]+)="([^"]*)"')
_DENIED = "pull access denied, repository does not exist or may require authorization: "


@dataclass
class Pulled:
    """A pull's result: the image's top digest and size, or the kubelet's error message."""

    digest: str = ""
    size: int = 0
    error: str | None = None


class PullError(Exception):
    """One containerd error; `code` is the CRI's gRPC code, `resolving` whether it arose while
    resolving the reference (then `failed to resolve reference` wraps it)."""

    def __init__(
        self, message: str, *, code: str = "Unknown", resolving: bool = True, denied: bool = False
    ) -> None:
        super().__init__(message)
        self.message, self.code, self.resolving, self.denied = message, code, resolving, denied


def registry_for(cluster: Cluster, image: str) -> Registry | None:
    """The scenario's registry that serves this image reference, if any."""
    if not cluster.scenario.registries:
        return None
    host = img.split_ref(image)[0].split("/", 1)[0]
    for reg in cluster.scenario.registries:
        if reg.host == host:
            return reg
    return None


def _client(cluster: Cluster, reg: Registry) -> httpx.AsyncClient:
    clients = cluster.registry_clients
    if reg.url not in clients:
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=reg.ca_file) if reg.ca_file else True
        )
        clients[reg.url] = httpx.AsyncClient(
            verify=verify, timeout=30.0, limits=httpx.Limits(max_connections=64)
        )
    return clients[reg.url]


async def close(cluster: Cluster) -> None:
    clients, cluster.registry_clients = cluster.registry_clients, {}
    for client in clients.values():
        await client.aclose()


def credentials(cluster: Cluster, reg: Registry, pod: dict[str, Any]) -> list[tuple[str, str]]:
    """The pod's pull secrets' entries for the registry host, then the node's own."""
    found: list[tuple[str, str]] = []
    namespace = pod["metadata"].get("namespace", "default")
    for ref in pod["spec"].get("imagePullSecrets") or []:
        entry = cluster.store.get("Secret", namespace, ref.get("name", ""))
        data = (entry.obj.get("data") or {}) if entry else {}
        raw = data.get(".dockerconfigjson") or data.get(".dockercfg")
        if not raw:
            continue
        try:
            doc = json.loads(base64.b64decode(raw))
        except ValueError:
            continue
        auths = doc.get("auths", doc) if isinstance(doc, dict) else {}
        for key, cred in auths.items():
            if not isinstance(cred, dict):
                continue
            if re.sub(r"^https?://", "", key).split("/", 1)[0] != reg.host:
                continue
            user, password = cred.get("username"), cred.get("password")
            if not user and cred.get("auth"):
                user, _, password = base64.b64decode(cred["auth"]).decode().partition(":")
            if user:
                found.append((user, password or ""))
    if reg.username:
        found.append((reg.username, reg.password or ""))
    return found


def _status(resp: httpx.Response) -> str:
    return f"{resp.status_code} {resp.reason_phrase}".rstrip()


def _registry_errors(resp: httpx.Response) -> str:
    """containerd's `Errors.Error()` for a JSON errors body: `code: message` (code lowercased,
    `_` as spaces), one per line after `errors:` when there are several."""
    try:
        body = resp.json()
    except ValueError:
        return ""
    errs = [
        f"{str(e.get('code', 'unknown')).lower().replace('_', ' ')}: {e.get('message', '')}"
        for e in (body.get("errors") or [] if isinstance(body, dict) else [])
        if isinstance(e, dict)
    ]
    if len(errs) > 1:
        return "errors:\n" + "".join(e + "\n" for e in errs)
    return errs[0] if errs else ""


def unexpected(resp: httpx.Response, *, resolving: bool = True) -> PullError:
    """`unexpectedResponseErr`: the status line, then the registry's errors (GET bodies only)."""
    text = (
        f"unexpected status from {resp.request.method} request to {resp.request.url}: "
        f"{_status(resp)}"
    )
    extra = _registry_errors(resp) if resp.request.method != "HEAD" else ""
    return PullError(f"{text}\n{extra}" if extra else text, resolving=resolving)


class _Session:
    """One pull attempt with one set of credentials (or none): the authorizer's state."""

    def __init__(
        self, client: httpx.AsyncClient, path: str, cred: tuple[str, str] | None, node_ip: str
    ) -> None:
        self.client, self.path, self.cred, self.node_ip = client, path, cred, node_ip
        self.auth: str | None = None
        self.scheme: str | None = None

    async def request(self, method: str, url: str, *, resolving: bool = True) -> httpx.Response:
        attempts, previous = MAX_ATTEMPTS, None
        responses = 0
        while True:
            headers = {"Accept": ACCEPT, "X-Forwarded-For": self.node_ip}
            if self.auth:
                headers["Authorization"] = self.auth
            try:
                resp = await self.client.request(method, url, headers=headers)
            except httpx.HTTPError as e:
                raise PullError(
                    f'failed to do request: {method.title()} "{url}": {e}', resolving=resolving
                ) from e
            attempts -= 1
            responses += 1
            retry = False
            if resp.status_code == 401:
                retry = await self._challenged(resp, responses, resolving)
            elif resp.status_code in (408, 429):
                retry = True
            elif resp.status_code in (500, 503, 504):
                retry = previous != resp.status_code
            previous = resp.status_code
            if not retry or attempts <= 0:
                return resp

    async def _challenged(self, resp: httpx.Response, responses: int, resolving: bool) -> bool:
        """`dockerAuthorizer.AddResponses`: True to send the request again."""
        for scheme, params in challenges(resp.headers.get_list("www-authenticate")):
            if scheme == "bearer":
                if params.get("error") and responses > 1:
                    raise PullError(
                        f"server message: {params['error']}: authorization failed",
                        denied=True,
                        resolving=resolving,
                    )
                self.auth = "Bearer " + await self._token(params, resolving)
                return True
            if scheme == "basic":
                user, password = self.cred or ("", "")
                if not user or not password:
                    raise PullError(
                        "authorization failed: no basic auth credentials",
                        denied=True,
                        resolving=resolving,
                    )
                self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
                return True
        return False  # "failed to find supported auth scheme": not retried

    async def _token(self, params: dict[str, str], resolving: bool) -> str:
        query = {"scope": f"repository:{self.path}:pull", "service": params.get("service", "")}
        url = f"{params.get('realm', '')}?{urlencode(query)}"
        kind = "oauth" if self.cred else "anonymous"
        auth = httpx.BasicAuth(*self.cred) if self.cred else None
        try:
            resp = await self.client.get(url, auth=auth, headers={"X-Forwarded-For": self.node_ip})
        except httpx.HTTPError as e:
            raise PullError(
                f'failed to authorize: failed to fetch {kind} token: Get "{url}": {e}',
                resolving=resolving,
            ) from e
        if resp.status_code >= 300:
            raise PullError(
                f"failed to authorize: failed to fetch {kind} token: unexpected status from GET "
                f"request to {url}: {_status(resp)}",
                resolving=resolving,
            )
        try:
            body = resp.json()
            return str(body.get("token") or body.get("access_token") or "")
        except (ValueError, AttributeError) as e:
            raise PullError(
                f"failed to authorize: failed to fetch {kind} token: unable to decode token "
                f"response: {e}",
                resolving=resolving,
            ) from e


def challenges(headers: list[str]) -> list[tuple[str, dict[str, str]]]:
    """`WWW-Authenticate` values -> [(scheme lowercased, params)]."""
    out = []
    for value in headers:
        for m in _CHALLENGE.finditer(value):
            out.append((m[1].lower(), dict(_PARAM.findall(m[2]))))
    return out


def _platform_ok(desc: dict[str, Any], os_: str, arch: str) -> bool:
    p = desc.get("platform")
    return p is None or (p.get("os") == os_ and p.get("architecture") == arch)


async def _pull_once(sess: _Session, base: str, full: str, obj: str, os_: str, arch: str) -> Pulled:
    url = f"{base}/v2/{sess.path}/manifests/{obj}"
    resp = await sess.request("HEAD", url)
    if resp.status_code == 404:
        raise PullError(f"{full}: not found", code="NotFound")
    if resp.status_code > 299:
        raise unexpected(resp)
    digest = obj if obj.startswith("sha256:") else resp.headers.get("docker-content-digest", "")
    got = await sess.request("GET", f"{base}/v2/{sess.path}/manifests/{digest or obj}")
    if got.status_code > 299:
        raise unexpected(got, resolving=not digest)
    digest = digest or "sha256:" + hashlib.sha256(got.content).hexdigest()
    doc = got.json()
    size = len(got.content)
    media = got.headers.get("content-type", "").split(";")[0] or doc.get("mediaType", "")
    if media in INDEX_TYPES or "manifests" in doc:
        matches = [d for d in doc.get("manifests") or [] if _platform_ok(d, os_, arch)]
        if not matches:
            raise PullError(
                "no match for platform in manifest: not found", code="NotFound", resolving=False
            )
        got = await sess.request(
            "GET", f"{base}/v2/{sess.path}/manifests/{matches[0]['digest']}", resolving=False
        )
        if got.status_code > 299:
            raise unexpected(got, resolving=False)
        doc = got.json()
        size += len(got.content)
    size += int((doc.get("config") or {}).get("size", 0))
    size += sum(int(layer.get("size", 0)) for layer in doc.get("layers") or [])
    return Pulled(digest=digest, size=size)


def cri_message(err: PullError, full: str) -> str:
    inner = (_DENIED if err.denied else "") + err.message
    if err.resolving:
        inner = f'failed to resolve reference "{full}": {inner}'
    return f'rpc error: code = {err.code} desc = failed to pull and unpack image "{full}": {inner}'


async def pull(
    cluster: Cluster, reg: Registry, node_state: NodeState, image: str, pod: dict[str, Any]
) -> Pulled:
    """PullImage against the real registry, with each of the pod's and node's credentials."""
    full = img.normalize(image)
    repo, tag, digest = img.split_ref(image)
    path = repo.split("/", 1)[1]
    node = nodes.node_obj(cluster, node_state.name) or {}
    labels = node.get("metadata", {}).get("labels") or {}
    addresses = node.get("status", {}).get("addresses") or [{"address": "127.0.0.1"}]
    os_, arch = labels.get("kubernetes.io/os", "linux"), labels.get("kubernetes.io/arch", "amd64")
    client = _client(cluster, reg)
    errors: list[str] = []
    creds: list[tuple[str, str] | None] = [*credentials(cluster, reg, pod)] or [None]
    for cred in creds:
        sess = _Session(client, path, cred, addresses[0]["address"])
        try:
            return await _pull_once(sess, reg.url, full, digest or tag, os_, arch)
        except PullError as e:
            message = cri_message(e, full)
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # a malformed manifest
            message = cri_message(PullError(f"failed to read manifest: {e}", resolving=False), full)
        if message not in errors:
            errors.append(message)
    return Pulled(error=errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]")
