"""OpenAPI documentation of the error envelope: one model, an example per status code."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import ConfigDict

from common.models import ErrorBody, TaskStatus


class ConflictBody(ErrorBody):
    """The 409 envelope: for a finished task, `status` carries its final status."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "conflict",
                    "details": "task already finished with status completed; nothing to cancel",
                    "taskId": "task-20260116-151234-a1b2c3d4",
                    "status": "completed",
                }
            ]
        }
    )

    status: TaskStatus | None = None


_EXAMPLES: dict[HTTPStatus, dict[str, Any]] = {
    HTTPStatus.BAD_REQUEST: {
        "error": "invalid request",
        "details": "batchSize: Input should be less than or equal to 100",
    },
    HTTPStatus.UNAUTHORIZED: {
        "error": "unauthorized",
        "details": "this API requires 'Authorization: Bearer <token>'",
    },
    HTTPStatus.FORBIDDEN: {
        "error": "forbidden by policy",
        "details": "imagePullPolicy: Always is not allowed here (IPS_ALLOW_ALWAYS_PULL=false)",
    },
    HTTPStatus.TOO_MANY_REQUESTS: {
        "error": "too many running tasks",
        "details": "20 tasks are running, the most IPS_MAX_RUNNING_TASKS allows; retry later",
    },
    HTTPStatus.NOT_FOUND: {
        "error": "task not found",
        "details": "no task with ID 'task-20260116-151234-a1b2c3d4'",
        "taskId": "task-20260116-151234-a1b2c3d4",
    },
    HTTPStatus.CONFLICT: {
        "error": "conflict",
        "details": "Idempotency-Key was already used with a different request body "
        "(task task-20260116-151234-a1b2c3d4); use a new key for a different task",
        "taskId": "task-20260116-151234-a1b2c3d4",
    },
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: {
        "error": "request body too large",
        "details": "the request body must be at most 1048576 bytes",
    },
    HTTPStatus.BAD_GATEWAY: {
        "error": "temporal error",
        "details": "reading the task: Namespace default is not found.",
    },
    HTTPStatus.SERVICE_UNAVAILABLE: {
        "error": "temporal unavailable",
        "details": "Temporal at localhost:7233 is unreachable: connection refused",
    },
}

_DESCRIPTIONS = {
    HTTPStatus.BAD_REQUEST: "Invalid input: malformed JSON, a field breaking a rule (named), "
    "an unknown status filter, limit > 100 or a negative offset.",
    HTTPStatus.UNAUTHORIZED: "The bearer token is missing or wrong (unless IPS_AUTH=none).",
    HTTPStatus.FORBIDDEN: "The token's role does not allow this call, or the operator's "
    "policy forbids the request (the rule is named).",
    HTTPStatus.TOO_MANY_REQUESTS: "IPS_MAX_RUNNING_TASKS tasks are running; retry after "
    "Retry-After seconds.",
    HTTPStatus.NOT_FOUND: "No such task.",
    HTTPStatus.CONFLICT: "Idempotency-Key reused with a different body.",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "Body larger than MAX_BODY_BYTES (1 MiB by default).",
    HTTPStatus.BAD_GATEWAY: "Temporal answered with an error the API did not expect.",
    HTTPStatus.SERVICE_UNAVAILABLE: "Temporal is unreachable; retry later (Retry-After).",
}


def error_responses(*codes: HTTPStatus) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for FastAPI: the envelope with the example for each code."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        model = ConflictBody if code == HTTPStatus.CONFLICT else ErrorBody
        out[code] = {
            "model": model,
            "description": _DESCRIPTIONS[code],
            "content": {"application/json": {"example": _EXAMPLES[code]}},
        }
    return out
