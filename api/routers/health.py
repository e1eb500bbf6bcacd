"""Liveness and readiness: open even when auth is on, so the reason a probe fails is told only
to the logs and to callers with a valid token (it names Temporal's address and its errors)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from http import HTTPStatus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from temporalio.client import Client

from api.auth import AuthConfig
from api.deps import TemporalConnector
from api.errors import TemporalUnavailable, error_response
from api.openapi_errors import error_responses

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

HIDDEN_DETAILS = "Temporal is not ready; the reason is in the API logs (or send a valid token)"

READY_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """200 while the process is up; it does not depend on Temporal."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="Readiness",
    responses=error_responses(HTTPStatus.SERVICE_UNAVAILABLE),
)
async def readyz(request: Request) -> Health | JSONResponse:
    """200 when Temporal answers a health check within 2 s and IPS's search attributes exist;
    503 otherwise. The reason is logged, and in the body only for a caller with a valid bearer
    token."""
    connector: TemporalConnector = request.app.state.temporal
    try:
        client = await connector.get()
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            healthy = await client.service_client.check_health(
                timeout=timedelta(seconds=READY_TIMEOUT_SECONDS)
            )
    except TemporalUnavailable as err:
        return not_ready(request, err.details)
    except Exception as err:  # any failure of the probe means "not ready", never a 500
        return not_ready(
            request,
            f"Temporal at {connector.settings.temporal_address} did not answer: "
            f"{err or type(err).__name__}",
        )
    if not healthy:
        return not_ready(request, "Temporal reports itself unhealthy")
    if reason := await _search_attributes_not_ready(connector, client):
        return not_ready(request, reason)
    return Health(status="ready")


async def _search_attributes_not_ready(connector: TemporalConnector, client: Client) -> str | None:
    """Missing search attributes IPS may not add (Temporal Cloud): which, and the command."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            return await connector.search_attributes.not_ready_reason(client)
    except Exception as err:
        return f"could not check the search attributes: {err or type(err).__name__}"


def not_ready(request: Request, details: str) -> JSONResponse:
    """503; `details` go to the log, and to the caller only if its token is valid (with
    IPS_AUTH=none nobody is authenticated, so nobody sees them)."""
    log.warning("not ready: %s", details)
    auth: AuthConfig = request.app.state.auth
    shown = auth.enabled and auth.identify(request.headers.get("authorization")) is not None
    return error_response(
        HTTPStatus.SERVICE_UNAVAILABLE, "not ready", details if shown else HIDDEN_DETAILS
    )


# Some load balancers probe with HEAD; undocumented duplicates of the GETs.
router.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)
router.add_api_route(
    "/readyz", readyz, methods=["HEAD"], include_in_schema=False, response_model=Health
)
