"""The one door to the Kubernetes API: rate limit, metrics, typed errors, bounded retries.

The official synchronous client runs in a dedicated thread pool; every response is read as a
plain dict (`_preload_content=False`), which is faster than the generated models at 5,000 nodes
and lets the pure functions (selection, classification) work on the wire JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import urllib3
from aiolimiter import AsyncLimiter
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from activities.errors import (
    KubernetesError,
    KubernetesServerError,
    KubernetesTooManyRequests,
    KubernetesUnreachable,
    from_api_exception,
)
from common.observability import K8S_RATE_LIMITED, K8S_REQUESTS
from common.settings import Settings

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = (5.0, 60.0)  # connect, read
ATTEMPTS = 5
THREADS = 32
LIST_PAGE = 500  # items per page of a paginated list (`limit`)
# A running batch holds two watches (its pods, its FailedCreate Events) and the worker one node
# watch: above twice the worker's MAX_CONCURRENT_ACTIVITIES plus one (worker/main.py; asserted
# by tests/workflows/test_timeouts.py).
WATCH_THREADS = 128
_backoff = wait_exponential_jitter(multiplier=0.25, max=8.0)


def _transient(exc: BaseException) -> bool:
    return isinstance(
        exc, KubernetesTooManyRequests | KubernetesServerError | KubernetesUnreachable
    )


def _wait(state: RetryCallState) -> float:
    """Retry-After for 429 (as the server asks), exponential back-off with jitter otherwise."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, KubernetesTooManyRequests):
        return exc.retry_after
    return _backoff(state)


class KubeConfigError(RuntimeError):
    """No usable Kubernetes configuration; the message says what to set."""


def load_api_client(settings: Settings) -> k8s.ApiClient:
    """KUBECONFIG when set, else the in-cluster service account."""
    cfg = k8s.Configuration()
    try:
        if settings.kubeconfig is not None:
            k8s_config.load_kube_config(
                config_file=str(settings.kubeconfig), client_configuration=cfg
            )
        else:
            k8s_config.load_incluster_config(client_configuration=cfg)
    except (k8s_config.ConfigException, OSError) as err:
        where = f"KUBECONFIG={settings.kubeconfig}" if settings.kubeconfig else "in-cluster"
        raise KubeConfigError(
            f"cannot load the Kubernetes configuration ({where}): {err}. Set KUBECONFIG to a "
            "kubeconfig file, or run the worker in a pod with a service account."
        ) from None
    cfg.connection_pool_maxsize = THREADS + WATCH_THREADS
    return k8s.ApiClient(cfg)


class Kube:
    """Async facade over the sync client. Every request is rate-limited and counted."""

    def __init__(self, settings: Settings, api_client: k8s.ApiClient | None = None) -> None:
        self.settings = settings
        self.namespace = settings.k8s_namespace
        self.api_client = api_client or load_api_client(settings)
        self.core = k8s.CoreV1Api(self.api_client)
        self.batch = k8s.BatchV1Api(self.api_client)
        # A leaky bucket: `burst` requests at once, refilled at `qps` per second.
        self.limiter = AsyncLimiter(settings.k8s_burst, settings.k8s_burst / settings.k8s_qps)
        self.executor = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="k8s")
        # Each running batch holds one thread in its (blocking) watch: they get their own pool,
        # so watches can never starve the requests.
        self.watch_executor = ThreadPoolExecutor(
            max_workers=WATCH_THREADS, thread_name_prefix="k8s-watch"
        )

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.watch_executor.shutdown(wait=False, cancel_futures=True)
        self.api_client.close()

    async def call(
        self, verb: str, resource: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        """One request, retried on 429 (after Retry-After), 5xx and connection errors."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(ATTEMPTS),
            wait=_wait,
            reraise=True,
        ):
            with attempt:
                return await self._once(verb, resource, fn, *args, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self, verb: str, resource: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        await self.limiter.acquire()
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        loop = asyncio.get_running_loop()
        try:
            status, body = await loop.run_in_executor(
                self.executor, partial(_read_json, fn, *args, **kwargs)
            )
        except ApiException as exc:
            err = from_api_exception(exc)
            K8S_REQUESTS.labels(verb, resource, str(err.code or "error")).inc()
            if isinstance(err, KubernetesTooManyRequests):
                K8S_RATE_LIMITED.inc()
                log.warning(
                    "Kubernetes 429 on %s %s: waiting %.1fs", verb, resource, err.retry_after
                )
            raise err from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            K8S_REQUESTS.labels(verb, resource, "error").inc()
            raise KubernetesUnreachable(f"{type(exc).__name__}: {exc}") from None
        K8S_REQUESTS.labels(verb, resource, str(status)).inc()
        return body

    def list_pages(
        self,
        resource: str,
        fn: Callable[..., Any],
        *args: Any,
        page_size: int = LIST_PAGE,
        **kwargs: Any,
    ) -> Pages:
        """One paginated list: `async for page in kube.list_pages(...)` yields each page dict.

        See `Pages`. kwargs (label_selector, ...) go unchanged with every page's request.
        """
        return Pages(self, resource, fn, args, kwargs, page_size)

    async def watch(
        self,
        resource: str,
        fn: Callable[..., Any],
        *args: Any,
        resource_version: str,
        timeout_seconds: int,
        on_event: Callable[[dict[str, Any]], None],
        stop: threading.Event,
        **kwargs: Any,
    ) -> None:
        """One watch request (rate-limited like every request), run in the watch pool.

        Each event dict goes to `on_event`, called in the watch thread. Raises typed errors
        (an ERROR event with code 410 becomes KubernetesGone, so the caller relists).
        """
        await self.limiter.acquire()
        loop = asyncio.get_running_loop()
        held: list[Any] = []
        try:
            await loop.run_in_executor(
                self.watch_executor,
                partial(
                    self._watch_blocking,
                    resource,
                    fn,
                    *args,
                    resource_version=resource_version,
                    timeout_seconds=timeout_seconds,
                    on_event=on_event,
                    stop=stop,
                    held=held,
                    **kwargs,
                ),
            )
        except asyncio.CancelledError:
            # The caller is done with this watch: end the request now, so that its thread and
            # connection are free at once rather than idle until the server's timeout.
            stop.set()
            for resp in held:
                _interrupt(resp)
            raise

    def _watch_blocking(
        self,
        resource: str,
        fn: Callable[..., Any],
        *args: Any,
        resource_version: str,
        timeout_seconds: int,
        on_event: Callable[[dict[str, Any]], None],
        stop: threading.Event,
        held: list[Any],
        **kwargs: Any,
    ) -> None:
        try:
            resp: Any = fn(
                *args,
                resource_version=resource_version,
                watch=True,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_seconds,
                _preload_content=False,
                _request_timeout=(REQUEST_TIMEOUT[0], timeout_seconds + 15),
                **kwargs,
            )
        except ApiException as exc:
            err = from_api_exception(exc)
            K8S_REQUESTS.labels("watch", resource, str(err.code or "error")).inc()
            raise err from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            K8S_REQUESTS.labels("watch", resource, "error").inc()
            raise KubernetesUnreachable(f"{type(exc).__name__}: {exc}") from None
        K8S_REQUESTS.labels("watch", resource, "200").inc()
        held.append(resp)
        if stop.is_set():
            _interrupt(resp)
        try:
            for line in iter_resp_lines(resp):
                if stop.is_set():
                    return
                if not line:
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    obj = event.get("object") or {}
                    raise from_api_exception(
                        ApiException(status=obj.get("code", 500), body=json.dumps(obj))
                    )
                on_event(event)
        except (urllib3.exceptions.HTTPError, OSError, ValueError, AttributeError) as exc:
            if not stop.is_set():
                raise KubernetesUnreachable(f"watch interrupted: {exc}") from None
        finally:
            if stop.is_set():
                with contextlib.suppress(Exception):
                    resp.close()
            else:
                resp.release_conn()


class Pages:
    """A paginated list, as an async iterator over its pages (one `list` request, each through
    `Kube.call` with its retries, per page): asks `limit=page_size` and follows
    `metadata.continue` until a page has none. Typed errors from a page propagate; a caller that
    retries starts a fresh iteration, which lists again from the first page.

    `resource_version` is the first page's `metadata.resourceVersion`, known once that page is
    yielded: a paginated list is one consistent snapshot, served at that resourceVersion
    (every continued page carries the same one), so it is where a watch resumes from.
    """

    def __init__(
        self,
        kube: Kube,
        resource: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        page_size: int,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self.kube, self.resource, self.fn = kube, resource, fn
        self.args, self.kwargs, self.page_size = args, kwargs, page_size
        self.resource_version = ""
        self.pages = 0  # pages fetched by the latest iteration

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        self.resource_version, self.pages = "", 0
        cont: str | None = None
        while True:
            kw: dict[str, Any] = {**self.kwargs, "limit": self.page_size}
            if cont:
                kw["_continue"] = cont
            page = await self.kube.call("list", self.resource, self.fn, *self.args, **kw)
            meta = page.get("metadata") or {}
            if not self.pages:
                self.resource_version = str(meta.get("resourceVersion") or "")
            self.pages += 1
            yield page
            cont = meta.get("continue")
            if not cont:
                return


def _interrupt(resp: Any) -> None:
    """Wake a thread blocked reading a watch response: shut its socket down."""
    sock = getattr(getattr(resp, "connection", None), "sock", None)
    with contextlib.suppress(Exception):
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)


def _read_json(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    resp = fn(*args, _preload_content=False, **kwargs)
    try:
        data = resp.data
    finally:
        resp.release_conn()
    if not data:
        return resp.status, {}
    parsed = json.loads(data)
    return resp.status, parsed if isinstance(parsed, dict) else {"items": parsed}


__all__ = ["LIST_PAGE", "Kube", "KubeConfigError", "KubernetesError", "Pages", "load_api_client"]
