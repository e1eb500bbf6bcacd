"""Typed registry errors, chosen from the answer in one place (as activities/errors.py does for
Kubernetes). `NotFound` and `Unauthorized` carry the registry's own message; everything without
a usable answer is `Unreachable`.
"""

from __future__ import annotations

import httpx

from common.preflight import PreflightError


class RegistryError(Exception):
    kind = PreflightError.UNREACHABLE

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class RegistryNotFound(RegistryError):
    kind = PreflightError.NOT_FOUND


class RegistryUnauthorized(RegistryError):
    kind = PreflightError.UNAUTHORIZED


class RegistryUnreachable(RegistryError):
    kind = PreflightError.UNREACHABLE


def registry_message(resp: httpx.Response) -> str:
    """The registry's own words: `CODE: message` of each entry of the spec's `errors` body,
    or a token server's `details`/`error`, else the HTTP reason."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    parts: list[str] = []
    if isinstance(body, dict):
        for err in body.get("errors") or []:
            if isinstance(err, dict) and (err.get("message") or err.get("code")):
                code, msg = err.get("code"), err.get("message")
                parts.append(f"{code}: {msg}" if code and msg else str(code or msg))
        for key in ("details", "error_description", "error"):
            if not parts and isinstance(body.get(key), str) and body[key]:
                parts.append(body[key])
    text = "; ".join(parts) or (resp.reason_phrase or "")
    return f"HTTP {resp.status_code}: {text}".rstrip(": ")


def error_for(resp: httpx.Response, what: str) -> RegistryError:
    msg = f"{what}: {registry_message(resp)}"
    if resp.status_code == httpx.codes.NOT_FOUND:
        return RegistryNotFound(msg, resp.status_code)
    if resp.status_code in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
        return RegistryUnauthorized(msg, resp.status_code)
    return RegistryUnreachable(msg, resp.status_code)
