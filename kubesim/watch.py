"""The watch endpoint: `?watch=true` streams ADDED/MODIFIED/DELETED from a resourceVersion, with
bookmarks, sendInitialEvents, timeouts, 410 Gone for compacted history and injected disconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kubesim.api_common import (
    COUNTED_KEY,
    DEFAULT_WATCH_TIMEOUT,
    ApiError,
    Resource,
    _want_table,
    status_body,
)
from kubesim.selectors import (
    fields_match,
    labels_match,
)
from kubesim.store import Entry, WatchEvent, encode
from kubesim.tables import table

if TYPE_CHECKING:
    from kubesim.server import Api


class Watch:
    def __init__(self, api: Api) -> None:
        self.api = api

    async def watch(
        self, request: web.Request, res: Resource, ns: str | None, name: str | None
    ) -> web.StreamResponse:
        lsel, fsel = self.api.reads.parse_selectors(request, res)
        query = request.query
        store = self.api.cluster.store
        faults = self.api.cluster.faults
        try:
            timeout = float(query.get("timeoutSeconds", DEFAULT_WATCH_TIMEOUT))
        except ValueError as e:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "BadRequest",
                f"invalid timeoutSeconds {query.get('timeoutSeconds')!r}",
            ) from e
        if faults.watch_disconnect_seconds:
            timeout = min(timeout, faults.watch_disconnect_seconds)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        table_mode = _want_table(request)
        include = query.get("includeObject", "Metadata")
        rv_param = query.get("resourceVersion", "")
        initial = query.get("sendInitialEvents") == "true"

        def matches(e: Entry) -> bool:
            if ns is not None and e.obj["metadata"].get("namespace") != ns:
                return False
            return labels_match(lsel, e.labels) and fields_match(fsel, e.fields)

        def line(type_: str, e: Entry) -> bytes:
            if table_mode:
                t = table(
                    res.kind,
                    res.api_version,
                    [e.obj],
                    {"resourceVersion": e.obj["metadata"]["resourceVersion"]},
                    include,
                )
                return encode({"type": type_, "object": t}) + b"\n"
            return b'{"type":"' + type_.encode() + b'","object":' + e.raw + b"}\n"

        def translate(ev: WatchEvent) -> bytes | None:
            cur = matches(ev.entry)
            old = ev.prev is not None and matches(ev.prev)
            if ev.type == "ADDED":
                return line("ADDED", ev.entry) if cur else None
            if ev.type == "DELETED":
                return line("DELETED", ev.entry) if old or cur else None
            if cur and old:
                return line("MODIFIED", ev.entry)
            if cur:
                return line("ADDED", ev.entry)
            if old:
                return line("DELETED", ev.entry)
            return None

        resp = web.StreamResponse(
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        )
        watcher = store.subscribe(res.kind)
        try:
            await resp.prepare(request)
            self.api.cluster.requests[("watch", res.plural, int(resp.status))] += 1
            request[COUNTED_KEY] = True
            chunks: list[bytes] = []
            last_rv = store.rv
            if rv_param in ("", "0") or initial:
                for cur in store.entries(res.kind, ns):
                    if matches(cur):
                        chunks.append(line("ADDED", cur))
                if initial and bookmarks:
                    chunks.append(self._bookmark(res, last_rv, initial_end=True))
            else:
                try:
                    since = int(rv_param)
                except ValueError:
                    since = -1
                compacted = store.compacted_rv(res.kind)
                if faults.expire_next_watch or since < compacted or since < 0:
                    faults.expire_next_watch = False
                    msg = f"too old resource version: {rv_param} ({compacted + 1})"
                    body = status_body(HTTPStatus.GONE, "Expired", msg)
                    await resp.write(encode({"type": "ERROR", "object": body}) + b"\n")
                    self.api.cluster.requests[("watch", res.plural, 410)] += 1
                    return resp
                for old_ev in store.events_since(res.kind, since):
                    if old_ev.rv > last_rv:
                        break
                    if (b := translate(old_ev)) is not None:
                        chunks.append(b)
            if chunks:
                await resp.write(b"".join(chunks))
            deadline = asyncio.get_running_loop().time() + timeout
            ev: WatchEvent | None
            while True:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        ev = await watcher.queue.get()
                except TimeoutError:
                    break
                batch: list[bytes] = []
                closing = False
                while ev is not None:
                    if ev.rv > last_rv:
                        last_rv = ev.rv
                        if (b := translate(ev)) is not None:
                            batch.append(b)
                    try:
                        ev = watcher.queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                else:
                    closing = True
                if batch:
                    await resp.write(b"".join(batch))
                if closing:
                    break
            if bookmarks:
                await resp.write(self._bookmark(res, max(last_rv, store.rv)))
            with contextlib.suppress(ConnectionError, RuntimeError):
                await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            store.unsubscribe(watcher)
        return resp

    @staticmethod
    def _bookmark(res: Resource, rv: int, initial_end: bool = False) -> bytes:
        md: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        return (
            encode(
                {
                    "type": "BOOKMARK",
                    "object": {"kind": res.kind, "apiVersion": res.api_version, "metadata": md},
                }
            )
            + b"\n"
        )
