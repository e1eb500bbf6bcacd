"""Typed Kubernetes API errors, chosen from the response in one place (after kopf's errors.py).

Activities raise these; `to_application_error` turns them into Temporal failures, where every
4xx except 409 and 429 is non-retryable (retrying a bad request or a missing namespace cannot
succeed).
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from kubernetes.client.exceptions import ApiException
from temporalio.exceptions import ApplicationError


class KubernetesError(Exception):
    """An error answer of the Kubernetes API (a `Status` object)."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        reason: str | None = None,
        status: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.status = status or {}

    @property
    def type_name(self) -> str:
        return type(self).__name__


class KubernetesUnreachable(KubernetesError):
    """No HTTP answer at all (connection refused, DNS, TLS, timeout)."""


class KubernetesServerError(KubernetesError):
    """5xx: the API server is overloaded or broken; retry."""


class KubernetesClientError(KubernetesError):
    """4xx that retrying cannot fix."""

    retryable = False


class KubernetesBadRequest(KubernetesClientError):
    pass


class KubernetesUnauthorized(KubernetesClientError):
    pass


class KubernetesForbidden(KubernetesClientError):
    pass


class KubernetesNotFound(KubernetesClientError):
    pass


class KubernetesConflict(KubernetesError):
    """409: AlreadyExists on create (adopt the object) or a write conflict (retry)."""

    @property
    def already_exists(self) -> bool:
        return self.reason == "AlreadyExists"


class KubernetesGone(KubernetesClientError):
    """410: a watch's resourceVersion is too old; relist and watch again."""


class KubernetesInvalid(KubernetesClientError):
    """422: the object fails validation."""


class KubernetesTooManyRequests(KubernetesError):
    """429: honour Retry-After, then retry."""

    def __init__(self, message: str, *, retry_after: float, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


_BY_CODE: dict[int, type[KubernetesError]] = {
    HTTPStatus.BAD_REQUEST: KubernetesBadRequest,
    HTTPStatus.UNAUTHORIZED: KubernetesUnauthorized,
    HTTPStatus.FORBIDDEN: KubernetesForbidden,
    HTTPStatus.NOT_FOUND: KubernetesNotFound,
    HTTPStatus.CONFLICT: KubernetesConflict,
    HTTPStatus.GONE: KubernetesGone,
    HTTPStatus.UNPROCESSABLE_ENTITY: KubernetesInvalid,
}

DEFAULT_RETRY_AFTER = 1.0


def _retry_after(headers: Any) -> float:
    raw = headers.get("Retry-After") if headers else None
    try:
        return max(0.0, float(raw)) if raw is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER


def from_api_exception(exc: ApiException) -> KubernetesError:
    """The typed error for an ApiException, with the Status message and reason."""
    code = int(exc.status or 0)
    status: dict[str, Any] = {}
    if exc.body:
        try:
            parsed = json.loads(exc.body)
            status = parsed if isinstance(parsed, dict) else {}
        except (ValueError, TypeError):
            status = {}
    message = str(status.get("message") or exc.reason or f"HTTP {code}")
    reason = status.get("reason")
    kw: dict[str, Any] = {"code": code, "reason": reason, "status": status}
    if code == 0:
        return KubernetesUnreachable(message, **kw)
    if code == HTTPStatus.TOO_MANY_REQUESTS:
        return KubernetesTooManyRequests(message, retry_after=_retry_after(exc.headers), **kw)
    if code >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return KubernetesServerError(message, **kw)
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(message, **kw)
    if HTTPStatus.BAD_REQUEST <= code < HTTPStatus.INTERNAL_SERVER_ERROR:
        return KubernetesClientError(message, **kw)
    return KubernetesError(message, **kw)


def to_application_error(err: KubernetesError, what: str) -> ApplicationError:
    """The Temporal failure for a Kubernetes error: non-retryable for hopeless 4xx."""
    code = f"HTTP {err.code}: " if err.code else ""
    return ApplicationError(
        f"{what}: {code}{err.message}",
        type=err.type_name,
        non_retryable=not err.retryable,
    )
