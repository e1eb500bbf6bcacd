"""A fault proxy in front of a real registry that answers 429 Too Many Requests to a fraction of
pulls for a while, as a registry's pull rate limit does.

    python -m kubesim.ratelimit_proxy --upstream https://127.0.0.1:5443 --ca-file ca.crt \\
        [--host 127.0.0.1] [--port 0] [--fraction 0.3] [--per client|request|total] \\
        [--rate 30] [--burst 30] [--window-seconds 5] [--after 0] [--seconds 60] \\
        [--retry-after 2] [--clients all|nodes] [--seed 0]

Everything but the limited answers is forwarded as is (method, path, query, headers, body), so
auth challenges, tokens and digests are the registry's own. Only manifest requests (HEAD/GET
`/v2/<name>/manifests/<reference>`) are limited, as registries count pulls by manifest requests.
A limited request gets 429 with `Retry-After` and the distribution spec's error body
(`{"errors": [{"code": "TOOMANYREQUESTS", "message": "too many requests"}]}`; a HEAD answer
has no body).

Who is limited (`per`: client, request or total) and when: kubesim/ratelimits.py.

`clients: nodes` limits only requests that carry `X-Forwarded-For` (kubesim's kubelets), so a
worker's preflight through the same proxy is never limited; `all` (default) limits everyone.

The limit is active from `after` seconds after it is set, for `seconds` (omitted: until
cleared); both real seconds. Decisions come from `seed`, so a run is reproducible.

Control (JSON, same port, outside /v2/): `GET /_proxy/stats` (requests, manifest requests,
limited, the limit), `PUT /_proxy/limit` (`{"fraction", "per", "rate", "burst",
"windowSeconds", "after", "seconds", "retryAfterSeconds", "clients"}`; 422 names a bad
field), `DELETE /_proxy/limit`.
Python: `start_proxy(upstream, ca_file=...)` returns a `ProxyHandle` running in a thread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import ssl
import sys
import threading
from concurrent.futures import Future
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import ValidationError

from kubesim.ratelimits import Limit, Limiter

MANIFEST = re.compile(r"^/v2/.+/manifests/[^/]+$")
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
TOO_MANY = {"errors": [{"code": "TOOMANYREQUESTS", "message": "too many requests"}]}


class RateLimitProxy:
    """The proxy's aiohttp app and its state, on one event loop."""

    def __init__(self, upstream: str, *, ca_file: str | None = None, seed: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.ca_file = ca_file
        self.limiter = Limiter(seed)
        self.counts = {"requests": 0, "manifestRequests": 0, "limited": 0}
        self.limited_clients: set[str] = set()
        self.session: aiohttp.ClientSession | None = None
        self.runner: web.AppRunner | None = None
        self.url = ""

    # -- limit ------------------------------------------------------------------------------
    @property
    def limit(self) -> Limit | None:
        return self.limiter.limit

    def set_limit(self, limit: Limit | None) -> None:
        self.limiter.set(limit, asyncio.get_running_loop().time())

    def stats(self) -> dict[str, Any]:
        now = asyncio.get_running_loop().time()
        return {
            **self.counts,
            "limitedClients": len(self.limited_clients),
            "active": self.limiter.active(now),
            "limit": self.limit.model_dump(by_alias=True) if self.limit else None,
        }

    # -- HTTP -------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/_proxy/stats", self._stats)
        app.router.add_put("/_proxy/limit", self._put_limit)
        app.router.add_delete("/_proxy/limit", self._delete_limit)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        return app

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _put_limit(self, request: web.Request) -> web.Response:
        try:
            limit = Limit.model_validate(await request.json())
        except ValidationError as e:
            fields = [
                {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
                for err in e.errors()
            ]
            return web.json_response({"errors": fields}, status=422)
        except ValueError:
            return web.json_response({"errors": [{"message": "body is not JSON"}]}, status=400)
        self.set_limit(limit)
        return web.json_response(self.stats())

    async def _delete_limit(self, request: web.Request) -> web.Response:
        self.set_limit(None)
        return web.json_response(self.stats())

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        self.counts["requests"] += 1
        if MANIFEST.match(request.path):
            self.counts["manifestRequests"] += 1
            forwarded = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
            client = forwarded or request.remote or ""
            exempt = self.limit is not None and self.limit.clients == "nodes" and not forwarded
            if not exempt and self.limiter.limited(client, asyncio.get_running_loop().time()):
                self.counts["limited"] += 1
                self.limited_clients.add(client)
                assert self.limit is not None
                return web.json_response(
                    TOO_MANY,
                    status=429,
                    headers={"Retry-After": str(self.limit.retry_after_seconds)},
                )
        assert self.session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers.pop("Content-Length", None)
        body = await request.read()
        async with self.session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as up:
            out = web.StreamResponse(status=up.status, reason=up.reason)
            for k, v in up.headers.items():
                if k.lower() not in HOP_BY_HOP:
                    out.headers.add(k, v)
            await out.prepare(request)
            if request.method != "HEAD":
                async for chunk in up.content.iter_chunked(65536):
                    await out.write(chunk)
            await out.write_eof()
            return out

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        ctx: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True
        )
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ctx, limit=256), auto_decompress=False
        )
        self.runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, backlog=1024)
        await site.start()
        self.url = f"http://{host}:{self.runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self.session is not None:
            await self.session.close()
            self.session = None


class ProxyHandle:
    """A proxy running in a background thread with its own event loop (tests, benchmarks)."""

    def __init__(self, proxy: RateLimitProxy, loop: asyncio.AbstractEventLoop) -> None:
        self.proxy, self.loop = proxy, loop
        self.url = proxy.url
        self.host = self.url.split("://", 1)[1]
        self._thread: threading.Thread | None = None

    def _call(self, fn: Any) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def set_limit(self, fraction: float | None = None, **kw: Any) -> dict[str, Any]:
        """`per`, `rate`, `burst`, `window_seconds`, `after`, `seconds`, `retry_after_seconds`,
        `clients` as in `Limit`."""
        limit = Limit(fraction=fraction, **kw)

        def apply() -> dict[str, Any]:
            self.proxy.set_limit(limit)
            return self.proxy.stats()

        return dict(self._call(apply))

    def clear_limit(self) -> None:
        self._call(lambda: self.proxy.set_limit(None))

    def stats(self) -> dict[str, Any]:
        return dict(self._call(self.proxy.stats))

    def stop(self) -> None:
        if self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> ProxyHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_proxy(
    upstream: str, *, ca_file: str | None = None, seed: int = 0, port: int = 0
) -> ProxyHandle:
    proxy = RateLimitProxy(upstream, ca_file=ca_file, seed=seed)
    loop = asyncio.new_event_loop()
    ready: Future[None] = Future()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(proxy.start(port=port))
        except BaseException as e:
            ready.set_exception(e)
            loop.close()
            return
        ready.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.close()

    thread = threading.Thread(target=main, name="ratelimit-proxy", daemon=True)
    thread.start()
    ready.result(timeout=30)
    handle = ProxyHandle(proxy, loop)
    handle._thread = thread
    return handle


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kubesim.ratelimit_proxy", description=__doc__)
    p.add_argument("--upstream", required=True, help="the registry: http(s)://HOST:PORT")
    p.add_argument("--ca-file", help="CA bundle for an https upstream")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--fraction", type=float, default=0.0, help="0..1; 0: no limit at start")
    p.add_argument("--per", choices=["client", "request", "total"], default="client")
    p.add_argument("--rate", type=float, default=None, help="per total: manifest requests/s")
    p.add_argument("--burst", type=int, default=None, help="per total: bucket size")
    p.add_argument("--window-seconds", type=float, default=5.0)
    p.add_argument("--after", type=float, default=0.0, help="real seconds before the limit")
    p.add_argument("--seconds", type=float, default=None, help="how long it lasts (real s)")
    p.add_argument("--retry-after", type=int, default=1)
    p.add_argument(
        "--clients",
        choices=["all", "nodes"],
        default="all",
        help="nodes: limit only requests with X-Forwarded-For (kubesim's kubelets)",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        limit = (
            Limit(
                fraction=args.fraction if args.per != "total" else None,
                per=args.per,
                rate=args.rate,
                burst=args.burst,
                window_seconds=args.window_seconds,
                after=args.after,
                seconds=args.seconds,
                retry_after_seconds=args.retry_after,
                clients=args.clients,
            )
            if args.fraction > 0 or args.per == "total"
            else None
        )
    except ValidationError as e:
        p.error(str(e))

    async def serve() -> None:
        proxy = RateLimitProxy(args.upstream, ca_file=args.ca_file, seed=args.seed)
        url = await proxy.start(args.host, args.port)
        proxy.set_limit(limit)
        print(f"ratelimit-proxy: listening on {url} -> {proxy.upstream}", flush=True)
        print(f"ratelimit-proxy: limit {json.dumps(proxy.stats()['limit'])}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await proxy.stop()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
