"""Dependencies: settings, the lazily (re)connected Temporal client, the task store, auth."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client
from temporalio.service import RetryConfig, RPCError

from api.auth import Principal, Role
from api.errors import Forbidden, TemporalUnavailable, Unauthorized
from api.search_attributes import SearchAttributeRegistration
from api.store import TaskReads, TaskStore
from common.settings import Settings
from common.temporal import connect

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5.0
# After a failed connect, requests fail fast for this long instead of each waiting 5 s.
RECONNECT_BACKOFF_SECONDS = 1.0


class TemporalConnector:
    """One client per process, connected on first use and retried after a failure.

    The API must start (and answer /healthz) while Temporal is down, so nothing here raises at
    start-up; task endpoints get a 503 until Temporal answers. Once connected, the SDK's
    channel reconnects by itself.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Client | None = None
        self._lock = asyncio.Lock()
        self._failed_at = 0.0
        self._last_error = ""
        self.search_attributes = SearchAttributeRegistration(settings.temporal_namespace)

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def get(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is not None:
                return self._client
            if time.monotonic() - self._failed_at < RECONNECT_BACKOFF_SECONDS:
                raise TemporalUnavailable(self._last_error)
            address = self.settings.temporal_address
            try:
                self._client = await asyncio.wait_for(
                    connect(
                        self.settings,
                        # Bound the SDK's own retries so a 503 comes in seconds, not minutes.
                        retry_config=RetryConfig(max_elapsed_time_millis=4000, max_retries=5),
                    ),
                    CONNECT_TIMEOUT_SECONDS,
                )
            except (RuntimeError, OSError, TimeoutError) as err:
                self._failed_at = time.monotonic()
                self._last_error = f"Temporal at {address} is unreachable: {err or 'timed out'}"
                raise TemporalUnavailable(self._last_error) from err
            log.info("connected to Temporal at %s", address)
            await self._register_search_attributes(self._client)
            return self._client

    async def _register_search_attributes(self, client: Client) -> None:
        """Before the first request uses the client: tasks need the attributes to start."""
        try:
            await asyncio.wait_for(self.search_attributes.ensure(client), CONNECT_TIMEOUT_SECONDS)
        except (RPCError, TimeoutError) as err:  # /readyz tries again on each probe
            log.warning("could not check the search attributes yet: %s", err or "timed out")


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_client(request: Request) -> Client:
    connector: TemporalConnector = request.app.state.temporal
    return await connector.get()


# The dependencies are `async def` though none awaits: FastAPI runs a plain `def` dependency
# in its thread pool, a thread hop per dependency per request (most of a cached GET's cost).
SettingsDep = Annotated[Settings, Depends(get_settings)]
TemporalClient = Annotated[Client, Depends(get_client)]


async def get_task_reads(request: Request) -> TaskReads:
    """The process's shared reads (single-flight and the short cache), made with the app."""
    reads: TaskReads = request.app.state.task_reads
    return reads


TaskReadsDep = Annotated[TaskReads, Depends(get_task_reads)]


async def get_store(request: Request, settings: SettingsDep, reads: TaskReadsDep) -> TaskStore:
    connector: TemporalConnector = request.app.state.temporal
    return TaskStore(connector.get, settings, reads)


Store = Annotated[TaskStore, Depends(get_store)]

_bearer = HTTPBearer(
    auto_error=False,
    description="A token from IPS_API_TOKENS or IPS_API_TOKENS_FILE (unless IPS_AUTH=none).",
)


async def get_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller AuthMiddleware identified (before the body was read); 401 if none did."""
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise Unauthorized(
            "this API requires 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


CallerDep = Annotated[Principal, Depends(get_principal)]


def require_role(needed: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: CallerDep) -> Principal:
        if not principal.may(needed):
            raise Forbidden(
                f"this token has role {principal.role.label}; this call needs {needed.label}"
            )
        return principal

    return check


Reader = Annotated[Principal, Depends(require_role(Role.READ))]
Writer = Annotated[Principal, Depends(require_role(Role.WRITE))]
