"""What the sync and async clients share: URLs, headers, request bodies and response decoding."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import pydantic

from ips_client.errors import IPSError, ValidationError, error_from_response
from ips_client.models import TaskSpec, TaskStatus, field_path

__all__ = ["DEFAULT_URL", "TASKS_PATH", "task_path"]

DEFAULT_URL = "http://localhost:8080"
TASKS_PATH = "/api/v1/tasks"
USER_AGENT = "ips-client/0.1.0"
DEFAULT_TIMEOUT = 10.0
# How long wait() keeps polling through 502/503/504 or no answer at all before giving up.
DEFAULT_TOLERATE_UNAVAILABLE = 60.0
# Minimum seconds between two polls: a 2,000-node rollout is not a reason to hammer the API.
MIN_POLL_INTERVAL = 0.2

M = TypeVar("M", bound=pydantic.BaseModel)


def resolve_base_url(url: str | None) -> str:
    """The explicit URL, else IPS_URL, else the default; rejects a URL with no scheme."""
    value = (url or os.environ.get("IPS_URL") or DEFAULT_URL).strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"IPS URL {value!r} must look like http://host:port or https://host "
            "(set IPS_URL or pass --url)"
        )
    return value


def resolve_token(token: str | None) -> str | None:
    value = token if token is not None else os.environ.get("IPS_TOKEN")
    return (value.strip() or None) if value else None


def headers(token: str | None) -> dict[str, str]:
    out = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


def resource_path(collection: str, kind: str, resource_id: str, suffix: str = "") -> str:
    """`collection/<id>suffix`; the ID is percent-encoded, so no input can reach another route."""
    if not resource_id or not resource_id.strip():
        raise ValidationError(f"invalid {kind} ID", details=f"{kind} ID must not be empty")
    return f"{collection}/{quote(resource_id.strip(), safe='')}{suffix}"


def task_path(task_id: str) -> str:
    """The task's URL path."""
    return resource_path(TASKS_PATH, "task", task_id)


def format_validation_error(err: pydantic.ValidationError) -> str:
    """`field: rule` for each problem, worded as the server words its 400s."""
    parts = []
    for e in err.errors():
        loc = field_path(e["loc"], camel=True)
        if e["type"] == "extra_forbidden":
            msg = "unknown field (not part of the task spec)"
        else:
            msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(dict.fromkeys(parts))


def create_body(spec: TaskSpec | Mapping[str, Any] | None, fields: dict[str, Any]) -> Any:
    """The POST body: a TaskSpec, a raw mapping sent as-is, or keyword fields validated here.

    Keyword fields are checked locally with the API's own model, so a typo fails before any
    network call with the same message the server would give.
    """
    if spec is not None and fields:
        raise TypeError("pass either a spec or keyword fields, not both")
    if isinstance(spec, TaskSpec):
        return spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if spec is not None:
        return dict(spec)
    return validated_body(TaskSpec, fields)


def validated_body(model: type[pydantic.BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` checked locally with the API's own model and dumped as the JSON body (camelCase,
    only the fields given); a bad field raises ValidationError worded as the server's 400."""
    try:
        checked = model.model_validate(data)
    except pydantic.ValidationError as err:
        raise ValidationError("invalid request", details=format_validation_error(err)) from None
    return checked.model_dump(mode="json", by_alias=True, exclude_unset=True)


def list_params(
    status: TaskStatus | str | None,
    limit: int | None,
    offset: int | None,
    schedule_id: str | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if schedule_id is not None:
        params["scheduleId"] = schedule_id
    if status is not None:
        params["status"] = str(status.value if isinstance(status, TaskStatus) else status)
    if limit is not None:
        params["limit"] = limit
    if offset is not None:
        params["offset"] = offset
    return params


def check(response: httpx.Response) -> Any:
    """The decoded JSON body of a 2xx response; otherwise the typed error."""
    if not response.is_success:
        raise error_from_response(response)
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise IPSError(
            "the API answered with a body that is not JSON",
            status_code=response.status_code,
            details=response.text[:200],
        ) from None


def decode(model: type[M], data: Any, status_code: int | None = None) -> M:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as err:
        raise IPSError(
            f"unexpected response body (is IPS_URL an IPS API?): expected {model.__name__}",
            status_code=status_code,
            details=format_validation_error(err),
        ) from None


def transport_error_message(base_url: str, err: httpx.TransportError) -> str:
    kind = "timed out" if isinstance(err, httpx.TimeoutException) else "failed"
    reason = str(err) or type(err).__name__
    return f"cannot reach the IPS API at {base_url}: request {kind} ({reason})"
