"""Typed errors, one per status a caller handles differently, chosen in one place.

Every error carries the API's envelope `{"error", "details", "taskId"?}` when there was one, so a
caller never parses message text.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import httpx


class IPSError(Exception):
    """Base of every error this client raises."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        details: str = "",
        task_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.details = details
        self.task_id = task_id
        self.body = body

    def __str__(self) -> str:
        text = self.message
        if self.details and self.details not in text:
            text = f"{text}: {self.details}"
        if self.status_code is not None:
            text = f"{text} (HTTP {self.status_code})"
        return text


class APIError(IPSError):
    """The API answered with an error status that has no more specific class (e.g. 500)."""


class ValidationError(APIError):
    """400/422: the request broke a rule; `details` names the field and the rule."""


class Unauthorized(APIError):
    """401/403: no token, a wrong token, or a token without access (set IPS_TOKEN)."""


class Forbidden(Unauthorized):
    """403: the token is valid but its role does not allow the call, or the operator's policy
    forbids the request (`details` name the rule). Another token will not help with a policy."""


class TaskNotFound(APIError):
    """404: no task with this ID."""


class ScheduleNotFound(TaskNotFound):
    """404: no schedule with this ID (a TaskNotFound, for code that catches any 404)."""


class Conflict(APIError):
    """409: the task is in a state that forbids the request (e.g. cancelling a finished task).

    `status` is the task's current status when the server said it.
    """

    @property
    def status(self) -> str | None:
        if isinstance(self.body, dict):
            value = self.body.get("status")
            return value if isinstance(value, str) else None
        return None


class ServiceUnavailable(APIError):
    """502/503/504: the API is up but cannot serve now (e.g. Temporal unreachable). Retry."""


class TooManyTasks(ServiceUnavailable):
    """429: the API runs as many tasks as its operator allows; retry after `Retry-After`."""


class Unreachable(ServiceUnavailable):
    """No HTTP answer at all: connection refused, DNS failure, timeout. Retry."""


class WaitTimeout(IPSError, TimeoutError):
    """`wait()` gave up before the task reached a final status; `last` is the last view seen."""

    def __init__(self, message: str, *, task_id: str, last: Any = None) -> None:
        super().__init__(message, task_id=task_id)
        self.last = last


_BY_STATUS: dict[int, type[APIError]] = {
    HTTPStatus.BAD_REQUEST: ValidationError,
    HTTPStatus.UNPROCESSABLE_ENTITY: ValidationError,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: ValidationError,
    HTTPStatus.UNAUTHORIZED: Unauthorized,
    HTTPStatus.FORBIDDEN: Forbidden,
    HTTPStatus.TOO_MANY_REQUESTS: TooManyTasks,
    HTTPStatus.NOT_FOUND: TaskNotFound,
    HTTPStatus.CONFLICT: Conflict,
    HTTPStatus.BAD_GATEWAY: ServiceUnavailable,
    HTTPStatus.SERVICE_UNAVAILABLE: ServiceUnavailable,
    HTTPStatus.GATEWAY_TIMEOUT: ServiceUnavailable,
}


def _details_of(body: dict[str, Any]) -> str:
    details = body.get("details")
    if isinstance(details, str):
        return details
    detail = body.get("detail")  # FastAPI's own envelope, should a route ever leak one
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
        return "; ".join(parts)
    if details is not None:
        return str(details)
    return ""


def error_from_response(response: httpx.Response) -> APIError:
    """The typed error for a non-2xx response, parsed from the API's error envelope."""
    code = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    cls = _BY_STATUS.get(code, APIError)
    message = _reason(code)
    details = ""
    task_id = None
    if isinstance(body, dict):
        if isinstance(body.get("error"), str) and body["error"]:
            message = body["error"]
        elif isinstance(body.get("message"), str) and body["message"]:
            message = body["message"]
        details = _details_of(body)
        task_id = body.get("taskId") if isinstance(body.get("taskId"), str) else None
    elif isinstance(body, str) and body.strip():
        details = body.strip().splitlines()[0][:200]
    if cls is TaskNotFound and message == "schedule not found":
        cls = ScheduleNotFound
    return cls(message, status_code=code, details=details, task_id=task_id, body=body)


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase.lower()
    except ValueError:
        return f"HTTP {code}"
