"""The FastAPI application: `create_app` for tests, `serve` for `ips api`.

The API holds no task state: every answer comes from Temporal, so restarts and replicas
behind a load balancer change nothing a client sees (but for a running task's view or a list
page reused for TASK_VIEW_CACHE_SECONDS, half a second by default: api/shared_reads.py).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from api.auth import AuthConfigError, AuthMiddleware, load_auth
from api.deps import TemporalConnector
from api.errors import TemporalUnavailable, install_error_handlers
from api.middleware import BodyLimitMiddleware, MetricsMiddleware
from api.routers import health, metrics, schedules, tasks
from api.store import TaskReads
from common.observability import setup_logging
from common.settings import Settings, load_settings

log = logging.getLogger(__name__)

DESCRIPTION = """\
Pre-pulls container images onto the nodes of a Kubernetes cluster, in batches. Each task is a
durable Temporal workflow; this API starts, reads, lists and cancels them and keeps no state of
its own.

Errors always have the envelope `{"error", "details"[, "taskId"]}`. Every `/api/*` call needs
`Authorization: Bearer <token>` (a token with role read, write or admin) unless the operator
set `IPS_AUTH=none`. See docs/api.md and docs/security.md.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Try Temporal once at start-up; if it is down, start anyway and connect on first use."""
    connector: TemporalConnector = app.state.temporal
    try:
        await connector.get()
    except TemporalUnavailable as err:
        log.warning("starting without Temporal (task endpoints answer 503): %s", err.details)
    yield


def _openapi_without_422(app: FastAPI) -> Any:
    """The schema of this deployment: no 422s (validation errors are 400s), and the bearer
    scheme and 401s only when auth is on."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        auth_on = app.state.auth.enabled
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                responses.pop(str(HTTPStatus.UNPROCESSABLE_ENTITY.value), None)
                if not auth_on:  # document what this deployment does: no 401, no scheme
                    operation.pop("security", None)
                    responses.pop(str(HTTPStatus.UNAUTHORIZED.value), None)
        components = schema.get("components", {})
        components.get("schemas", {}).pop("HTTPValidationError", None)
        components.get("schemas", {}).pop("ValidationError", None)
        if not auth_on:
            components.pop("securitySchemes", None)
        app.openapi_schema = schema
        return schema

    return openapi


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; AuthConfigError when the settings would leave auth silently off."""
    settings = settings or load_settings()
    auth = load_auth(settings)
    # Swagger UI and ReDoc served from the package, not a CDN: /docs works on air-gapped clusters.
    app = FastAPIOffline(
        title="Image Prewarm Service",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "tasks", "description": "Prewarm tasks (Temporal workflows)."},
            {"name": "schedules", "description": "Recurring prewarms (Temporal Schedules)."},
            {"name": "health", "description": "Liveness and readiness probes."},
            {"name": "metrics", "description": "Prometheus metrics."},
        ],
    )
    app.state.settings = settings
    app.state.temporal = TemporalConnector(settings)
    app.state.task_reads = TaskReads(settings)
    app.state.auth = auth
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(tasks.router)
    app.include_router(schedules.router)
    app.openapi = _openapi_without_422(app)  # type: ignore[method-assign]

    # Outermost last: metrics see every request, 413s included.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Outside the body cap: an unauthenticated caller gets 401 before any byte of body is read.
    app.add_middleware(AuthMiddleware, config=auth)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Location", "Age", "Cache-Status"],
        )
    app.add_middleware(MetricsMiddleware)
    if auth.enabled:
        log.info("bearer-token auth is on (%d token(s))", len(auth.tokens))
    else:
        log.warning(
            "IPS_AUTH=none: the API has NO authentication; anyone who reaches %s:%d can pull "
            "images onto every node",
            settings.server_host,
            settings.server_port,
        )
    return app


def serve() -> None:
    """`ips api`: settings from the environment, JSON logs, uvicorn on SERVER_HOST:SERVER_PORT."""
    settings = load_settings()
    setup_logging(settings, "api")
    try:
        app = create_app(settings)
    except AuthConfigError as err:
        print(f"invalid configuration: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(
        app,
        host=settings.server_host,
        port=settings.server_port,
        log_config=None,
        access_log=True,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
