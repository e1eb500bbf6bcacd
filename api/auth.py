"""Who is calling: bearer tokens with a role, checked before the request body is read.

Closed by default: the API refuses to start without a token unless IPS_AUTH=none says so. A
token entry is `TOKEN` or `TOKEN ROLE` (ROLE: read, write or admin); a bare `TOKEN`, the only
form before roles existed, keeps every right it had (admin). The roles nest: read < write < admin.

- read: get and list tasks;
- write: also create tasks, and cancel the tasks this token created;
- admin: also cancel any task.

`AuthMiddleware` authenticates every `/api/` request before routing or body parsing, so an
unauthenticated caller learns nothing (not even whether its JSON parses) and costs no parsing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from enum import IntEnum
from http import HTTPStatus

from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response
from common.settings import AuthMode, Settings

log = logging.getLogger(__name__)

PROTECTED_PREFIX = "/api/"


class Role(IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Principal:
    """A caller: `id` is a short hash of the token (never the token), `anonymous` with no auth."""

    id: str
    role: Role

    def may(self, needed: Role) -> bool:
        return self.role >= needed


ANONYMOUS = Principal("anonymous", Role.ADMIN)


class AuthConfigError(ValueError):
    """A start-up error; its message never contains a token."""


def principal_id(token: str) -> str:
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:16]


def _parse_entry(entry: str, where: str) -> tuple[bytes, Principal]:
    parts = entry.split()
    if len(parts) == 1:
        role = Role.ADMIN
    elif len(parts) == 2 and parts[1].upper() in Role.__members__:
        role = Role[parts[1].upper()]
    else:  # never echo the entry: any word of it may be a token
        raise AuthConfigError(
            f"{where}: expected `TOKEN` or `TOKEN ROLE` with ROLE read, write or admin"
        )
    return parts[0].encode(), Principal(principal_id(parts[0]), role)


@dataclass
class AuthConfig:
    mode: AuthMode
    tokens: list[tuple[bytes, Principal]] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.mode == AuthMode.TOKEN

    def identify(self, authorization: str | None) -> Principal | None:
        """The caller of this Authorization header; None if it names no valid token.

        Compared against every token in constant time, so timing says nothing about which."""
        if not self.enabled:
            return ANONYMOUS
        if not authorization:
            return None
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None
        given = credentials.strip().encode()
        found: Principal | None = None
        for token, principal in self.tokens:
            if hmac.compare_digest(given, token):
                found = principal
        return found


def _read_tokens(settings: Settings) -> list[tuple[bytes, Principal]]:
    tokens: list[tuple[bytes, Principal]] = []
    if settings.ips_api_tokens is not None:
        for i, entry in enumerate(settings.ips_api_tokens.get_secret_value().split(",")):
            if entry.strip():
                tokens.append(_parse_entry(entry, f"IPS_API_TOKENS entry {i + 1}"))
    if settings.ips_api_tokens_file is not None:
        try:
            text = settings.ips_api_tokens_file.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise AuthConfigError(
                f"IPS_API_TOKENS_FILE {settings.ips_api_tokens_file} cannot be read: "
                f"{getattr(err, 'strerror', None) or type(err).__name__}"
            ) from None
        for line_number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if line and not line.startswith("#"):
                tokens.append(_parse_entry(line, f"IPS_API_TOKENS_FILE line {line_number}"))
    return tokens


def load_auth(settings: Settings) -> AuthConfig:
    """The auth of this deployment, or AuthConfigError: silence never turns auth off."""
    configured = settings.ips_api_tokens is not None or settings.ips_api_tokens_file is not None
    if settings.ips_auth == AuthMode.NONE:
        # An empty token variable next to IPS_AUTH=none is consistent (compose passes one).
        if configured and _read_tokens(settings):
            raise AuthConfigError(
                "IPS_AUTH=none contradicts the tokens in IPS_API_TOKENS / IPS_API_TOKENS_FILE"
            )
        return AuthConfig(AuthMode.NONE)
    if not configured:
        raise AuthConfigError(
            "no API tokens: set IPS_API_TOKENS or IPS_API_TOKENS_FILE, "
            "or IPS_AUTH=none to run the API with no authentication"
        )
    tokens = _read_tokens(settings)
    if not tokens:
        raise AuthConfigError(
            "IPS_API_TOKENS / IPS_API_TOKENS_FILE is set but holds no token (empty, only "
            "commas or only comments); refusing to start with auth silently off. "
            "Use IPS_AUTH=none to run with no authentication"
        )
    return AuthConfig(AuthMode.TOKEN, tokens)


class AuthMiddleware:
    """401 for an `/api/` request without a valid token, before routing and body parsing.

    The caller is left in `scope["state"]["principal"]` for the role checks of the routes."""

    def __init__(self, app: ASGIApp, config: AuthConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        principal = self.config.identify(header)
        if principal is None:
            if header is None:
                response = error_response(
                    HTTPStatus.UNAUTHORIZED,
                    "unauthorized",
                    "this API requires 'Authorization: Bearer <token>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            else:
                response = error_response(
                    HTTPStatus.UNAUTHORIZED,
                    "unauthorized",
                    "invalid bearer token",
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)
