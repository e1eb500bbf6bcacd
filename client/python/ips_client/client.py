"""`IPSClient` (blocking) and `AsyncIPSClient` (asyncio) for the IPS REST API."""

from __future__ import annotations

import asyncio
import inspect
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self

import httpx

from ips_client import _core
from ips_client.errors import ServiceUnavailable, Unreachable, WaitTimeout
from ips_client.models import CancelResult, TaskCreated, TaskList, TaskSpec, TaskStatus, TaskView
from ips_client.schedules import AsyncScheduleCalls, ScheduleCalls

ProgressCallback = Callable[[TaskView], object]
AsyncProgressCallback = Callable[[TaskView], object | Awaitable[object]]


class _Base:
    def __init__(
        self, base_url: str | None, token: str | None, timeout: float | httpx.Timeout
    ) -> None:
        self.base_url = _core.resolve_base_url(base_url)
        self._token = _core.resolve_token(token)
        self._timeout = timeout

    def __repr__(self) -> str:  # never the token
        auth = "token" if self._token else "no token"
        return f"{type(self).__name__}({self.base_url!r}, {auth})"

    def _unreachable(self, err: httpx.TransportError) -> Unreachable:
        return Unreachable(_core.transport_error_message(self.base_url, err))


class IPSClient(ScheduleCalls, _Base):
    """Blocking client. URL and token default to IPS_URL and IPS_TOKEN.

    Use as a context manager, or call `close()`. `verify` is a CA bundle path or an SSLContext
    for an API behind a private CA (SSL_CERT_FILE also works). `transport` is for tests.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout = _core.DEFAULT_TIMEOUT,
        verify: bool | str | ssl.SSLContext = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, timeout)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=_core.headers(self._token),
            timeout=timeout,
            # Retries only failed connection attempts: never replays a request the API received.
            transport=transport or httpx.HTTPTransport(retries=2, verify=verify),
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One API call, returning the decoded JSON body; errors are typed (see errors.py)."""
        try:
            response = self._http.request(method, path, params=params, json=json, headers=headers)
        except httpx.TransportError as err:
            raise self._unreachable(err) from None
        return _core.check(response)

    def create(
        self,
        spec: TaskSpec | Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> TaskCreated:
        """Start a task: `create(images=[...], batch_size=10, node_selector={...})`.

        Also accepts a `TaskSpec`, or a camelCase mapping sent as-is (the server validates it).
        """
        body = _core.create_body(spec, fields)
        extra = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        data = self.request("POST", _core.TASKS_PATH, json=body, headers=extra)
        return _core.decode(TaskCreated, data)

    def get(self, task_id: str) -> TaskView:
        return _core.decode(TaskView, self.request("GET", _core.task_path(task_id)))

    def list(
        self,
        status: TaskStatus | str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        *,
        schedule_id: str | None = None,
    ) -> TaskList:
        """Newest first; `schedule_id` lists the runs of one schedule."""
        params = _core.list_params(status, limit, offset, schedule_id)
        return _core.decode(TaskList, self.request("GET", _core.TASKS_PATH, params=params))

    def cancel(self, task_id: str) -> CancelResult:
        """Ask the task to stop; it ends `cancelled`. Raises Conflict if it already finished."""
        return _core.decode(CancelResult, self.request("DELETE", _core.task_path(task_id)))

    def wait(
        self,
        task_id: str,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        *,
        poll_interval: float = 1.0,
        tolerate_unavailable: float = _core.DEFAULT_TOLERATE_UNAVAILABLE,
    ) -> TaskView:
        """Poll until the task is completed, failed or cancelled, and return its final view.

        `on_progress` gets every view polled, the final one included. The API being briefly
        unavailable (a restart) is ridden out for `tolerate_unavailable` seconds. Raises
        WaitTimeout after `timeout` seconds; the task itself keeps running.
        """
        interval = max(poll_interval, _core.MIN_POLL_INTERVAL)
        deadline = None if timeout is None else time.monotonic() + timeout
        last: TaskView | None = None
        down_since: float | None = None
        while True:
            try:
                view = self.get(task_id)
            except ServiceUnavailable:
                now = time.monotonic()
                down_since = down_since or now
                if now - down_since >= tolerate_unavailable:
                    raise
            else:
                down_since = None
                last = view
                if on_progress is not None:
                    on_progress(view)
                if view.status.is_final:
                    return view
            if deadline is not None and time.monotonic() + interval > deadline:
                raise WaitTimeout(
                    f"task {task_id} is still {last.status.value if last else 'unknown'} "
                    f"after {timeout:g}s",
                    task_id=task_id,
                    last=last,
                )
            time.sleep(interval)


class AsyncIPSClient(AsyncScheduleCalls, _Base):
    """asyncio client with the same methods as `IPSClient`, as coroutines."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout = _core.DEFAULT_TIMEOUT,
        verify: bool | str | ssl.SSLContext = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, timeout)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=_core.headers(self._token),
            timeout=timeout,
            transport=transport or httpx.AsyncHTTPTransport(retries=2, verify=verify),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        try:
            response = await self._http.request(
                method, path, params=params, json=json, headers=headers
            )
        except httpx.TransportError as err:
            raise self._unreachable(err) from None
        return _core.check(response)

    async def create(
        self,
        spec: TaskSpec | Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> TaskCreated:
        body = _core.create_body(spec, fields)
        extra = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        data = await self.request("POST", _core.TASKS_PATH, json=body, headers=extra)
        return _core.decode(TaskCreated, data)

    async def get(self, task_id: str) -> TaskView:
        return _core.decode(TaskView, await self.request("GET", _core.task_path(task_id)))

    async def list(
        self,
        status: TaskStatus | str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        *,
        schedule_id: str | None = None,
    ) -> TaskList:
        params = _core.list_params(status, limit, offset, schedule_id)
        return _core.decode(TaskList, await self.request("GET", _core.TASKS_PATH, params=params))

    async def cancel(self, task_id: str) -> CancelResult:
        return _core.decode(CancelResult, await self.request("DELETE", _core.task_path(task_id)))

    async def wait(
        self,
        task_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - the same signature as the sync wait()
        on_progress: AsyncProgressCallback | None = None,
        *,
        poll_interval: float = 1.0,
        tolerate_unavailable: float = _core.DEFAULT_TOLERATE_UNAVAILABLE,
    ) -> TaskView:
        """As `IPSClient.wait`; `on_progress` may be a plain function or a coroutine function."""
        interval = max(poll_interval, _core.MIN_POLL_INTERVAL)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        last: TaskView | None = None
        down_since: float | None = None
        while True:
            try:
                view = await self.get(task_id)
            except ServiceUnavailable:
                now = loop.time()
                down_since = down_since or now
                if now - down_since >= tolerate_unavailable:
                    raise
            else:
                down_since = None
                last = view
                if on_progress is not None:
                    result = on_progress(view)
                    if inspect.isawaitable(result):
                        await result
                if view.status.is_final:
                    return view
            if deadline is not None and loop.time() + interval > deadline:
                raise WaitTimeout(
                    f"task {task_id} is still {last.status.value if last else 'unknown'} "
                    f"after {timeout:g}s",
                    task_id=task_id,
                    last=last,
                )
            await asyncio.sleep(interval)
