"""The one error envelope, `{"error", "details"[, "taskId"]}`, for every failure the API returns.

Handlers here turn FastAPI's 422 into 400 (naming the field and the rule), Starlette's HTTP
errors (404 route, 405 method) and our own `ApiError`s into the envelope, so a client parses
one shape whatever went wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from common.models import ErrorBody, TaskStatus, field_path

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with its HTTP status and envelope; raised anywhere, rendered in one place."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    error: str = "internal error"

    def __init__(
        self,
        details: str,
        *,
        task_id: str | None = None,
        status: TaskStatus | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(details)
        self.details = details
        self.task_id = task_id
        self.task_status = status
        self.headers = headers

    def body(self) -> dict[str, Any]:
        out = ErrorBody(error=self.error, details=self.details, task_id=self.task_id).model_dump(
            exclude_none=True, by_alias=True
        )
        if self.task_status is not None:
            out["status"] = self.task_status.value
        return out


class BadRequest(ApiError):
    status = HTTPStatus.BAD_REQUEST
    error = "invalid request"


class Unauthorized(ApiError):
    status = HTTPStatus.UNAUTHORIZED
    error = "unauthorized"


class Forbidden(ApiError):
    """The caller is known but may not do this: its token's role, or the operator's policy."""

    status = HTTPStatus.FORBIDDEN
    error = "forbidden"


class PolicyViolation(Forbidden):
    error = "forbidden by policy"


class TooManyTasks(ApiError):
    status = HTTPStatus.TOO_MANY_REQUESTS
    error = "too many running tasks"

    def __init__(self, details: str, retry_after: int) -> None:
        super().__init__(details, headers={"Retry-After": str(retry_after)})


class TaskNotFound(ApiError):
    status = HTTPStatus.NOT_FOUND
    error = "task not found"

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task with ID {task_id!r}", task_id=task_id)


class Conflict(ApiError):
    status = HTTPStatus.CONFLICT
    error = "conflict"


class PayloadTooLarge(ApiError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    error = "request body too large"


class TemporalUnavailable(ApiError):
    """Temporal cannot be reached (or sheds load): the client should retry later."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    error = "temporal unavailable"

    def __init__(self, details: str) -> None:
        super().__init__(details, headers={"Retry-After": "5"})


class TemporalError(ApiError):
    """Temporal answered with an error the API did not expect."""

    status = HTTPStatus.BAD_GATEWAY
    error = "temporal error"


def error_response(
    status: HTTPStatus, error: str, details: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        ErrorBody(error=error, details=details).model_dump(exclude_none=True, by_alias=True),
        status_code=status,
        headers=headers,
    )


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """One line per problem: `field: rule`, the way a human fixes a request."""
    lines: list[str] = []
    for error in errors:
        kind = error.get("type", "")
        if kind == "json_invalid":
            ctx = error.get("ctx") or {}
            lines.append(f"malformed JSON: {ctx.get('error', 'cannot parse the body')}")
            continue
        msg = str(error.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        loc = error.get("loc") or ()
        if kind == "missing" and tuple(loc) == ("body",):
            lines.append("body: a JSON object is required")
        elif kind == "extra_forbidden":
            lines.append(f"{field_path(loc) or 'body'}: unknown field (not part of the task spec)")
        else:
            lines.append(f"{field_path(loc) or 'body'}: {msg}")
    return "; ".join(dict.fromkeys(lines)) or "invalid request"


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    malformed = any(error.get("type") == "json_invalid" for error in errors)
    return error_response(
        HTTPStatus.BAD_REQUEST,
        "malformed JSON" if malformed else "invalid request",
        describe_validation_errors(errors),
    )


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route fully matches on this path (Starlette names only the first
    route's methods)."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = HTTPStatus(exc.status_code)
    details = exc.detail if isinstance(exc.detail, str) else status.description
    headers = dict(exc.headers or {})
    if status == HTTPStatus.NOT_FOUND and details == status.phrase:
        details = "no such endpoint; see /docs"
    if status == HTTPStatus.METHOD_NOT_ALLOWED:
        headers["Allow"] = _allowed_methods(request)
        details = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    return error_response(status, status.phrase.lower(), details, headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", "unexpected error; see the API logs"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
