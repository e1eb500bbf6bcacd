"""Registry credentials and transport rules (pure): pull secrets, auth challenges, plain HTTP.

- Pull secrets are `kubernetes.io/dockerconfigjson` (`{"auths": {host: {...}}}`) or the legacy
  `kubernetes.io/dockercfg` (the `auths` map alone). An entry gives `username`/`password` or
  `auth` (base64 `user:password`). Keys are matched to a registry by host[:port] after removing
  any scheme and path, as the kubelet's keyring does for plain host keys
  (pkg/credentialprovider/keyring.go, `parseSchemelessURL`); the Docker Hub aliases all count
  as `docker.io`. Every secret that names a host gives one set of credentials, in the task's
  order; they are tried in turn, as the kubelet does (pkg/kubelet/kuberuntime/
  kuberuntime_image.go, `PullImage`: each matching credential until one pulls, and no
  anonymous attempt once credentials exist).
- `WWW-Authenticate` challenges (`Bearer realm="...",service="...",scope="..."` or `Basic`)
  are parsed per RFC 7235, the way the distribution client does
  (registry/client/auth/challenge/authchallenge.go).
- Plain HTTP: loopback registries (`localhost`, `127.0.0.0/8`, `::1`) may use it, as Docker
  and containerd allow; any other registry only when listed in `INSECURE_REGISTRIES`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

DOCKER_HUB = "docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def registry_key(raw: str) -> str:
    """`https://r.example.com:5000/v1/` -> `r.example.com:5000`; Hub aliases -> `docker.io`."""
    host = raw.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].lower()
    return DOCKER_HUB if host in _HUB_ALIASES else host


def _entry_credentials(entry: Any) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    user, password = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(password, str) and (user or password):
        return Credentials(user, password)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        if sep:
            return Credentials(user, password)
    return None


def parse_docker_config(raw: bytes | str) -> dict[str, Credentials]:
    """host -> credentials from a `.dockerconfigjson` (or legacy `.dockercfg`) payload.
    Malformed input raises ValueError with what is wrong (never the secret itself)."""
    try:
        doc = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    auths = doc.get("auths", doc)
    if not isinstance(auths, dict):
        raise ValueError("'auths' is not an object")
    out: dict[str, Credentials] = {}
    for key, entry in auths.items():
        creds = _entry_credentials(entry)
        if creds is not None:
            out.setdefault(registry_key(key), creds)
    return out


Keyring = dict[str, list[Credentials]]


def merge_keyrings(keyrings: list[dict[str, Credentials]]) -> Keyring:
    """host -> every secret's credentials for it, in the secrets' order, without repeats."""
    out: Keyring = {}
    for ring in keyrings:
        for host, creds in ring.items():
            if creds not in out.setdefault(host, []):
                out[host].append(creds)
    return out


# --- challenges ---------------------------------------------------------------------------

_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower-case: "bearer" or "basic"
    params: dict[str, str]


def parse_challenge(header: str | None) -> Challenge | None:
    """The first challenge of a `WWW-Authenticate` header, or None."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if m is None:
            break
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = m.end()
    return Challenge(scheme.lower(), params)


# --- plain HTTP -----------------------------------------------------------------------------


def split_host(host: str) -> str:
    """The host name of `host[:port]` (IPv6 in brackets kept bare)."""
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    """`localhost`, `127.0.0.0/8` and `::1`, with or without a port."""
    name = split_host(host).lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def plain_http_allowed(host: str, insecure_registries: list[str]) -> bool:
    """May this registry be reached over plain HTTP? Loopback always; others when listed
    (as `host` for every port, or as `host:port`)."""
    if is_loopback(host):
        return True
    allowed = {h.strip().lower() for h in insecure_registries}
    return host.lower() in allowed or split_host(host).lower() in allowed
