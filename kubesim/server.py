"""The HTTP face of kubesim: the Kubernetes REST API (discovery, CRUD, list, watch, Table) on
aiohttp, plus the `/kubesim/` control and stats endpoints."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import random
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from kubesim import admission
from kubesim.cluster import Cluster
from kubesim.protobuf import ProtobufError, decode_object
from kubesim.scenario import Faults
from kubesim.selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
    supported_fields,
)
from kubesim.store import Conflict, Entry, WatchEvent, encode
from kubesim.tables import table
from kubesim.validation import (
    Invalid,
    add_default_tolerations,
    admit_generic,
    admit_job,
    admit_namespace,
    admit_pod,
)

K8S_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.2-kubesim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}
DEFAULT_WATCH_TIMEOUT = 1800.0
VERB_KEY = web.RequestKey("kubesim_verb", str)
RESOURCE_KEY = web.RequestKey("kubesim_resource", str)
JOB_ORPHAN_WARNING = (
    '299 - "child pods are preserved by default when jobs are deleted; set '
    "propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress "
    'this warning"'
)


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str
    namespaced: bool
    group: str
    version: str
    short: tuple[str, ...] = ()
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES: dict[tuple[str, str], dict[str, Resource]] = {
    ("", "v1"): {
        "nodes": Resource("nodes", "Node", False, "", "v1", ("no",)),
        "pods": Resource("pods", "Pod", True, "", "v1", ("po",), categories=("all",)),
        "events": Resource("events", "Event", True, "", "v1", ("ev",)),
        "namespaces": Resource(
            "namespaces",
            "Namespace",
            False,
            "",
            "v1",
            ("ns",),
            ("create", "delete", "get", "list", "patch", "update", "watch"),
        ),
        "secrets": Resource("secrets", "Secret", True, "", "v1"),
    },
    ("batch", "v1"): {
        "jobs": Resource("jobs", "Job", True, "batch", "v1", categories=("all",)),
    },
}
ADMIT = {"Pod": admit_pod, "Job": admit_job, "Namespace": admit_namespace}


INCONSISTENT_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted between "
    "the time the first chunk was returned and now may show up in the list."
)


class ApiError(Exception):
    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        *,
        plain: bool = False,
        list_continue: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details, self.headers = details, headers or {}
        self.plain, self.list_continue = plain, list_continue


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if not reason:
        del body["reason"]  # a webhook denial carries none
    if details is not None:
        body["details"] = details
    return body


def error_response(err: ApiError) -> web.Response:
    if err.plain:
        # net/http's http.Error: text/plain, nosniff, the message and a newline.
        return web.Response(
            text=err.message + "\n",
            status=err.code,
            headers={**err.headers, "X-Content-Type-Options": "nosniff"},
            content_type="text/plain",
            charset="utf-8",
        )
    body = status_body(err.code, err.reason, err.message, err.details)
    if err.list_continue is not None:
        body["metadata"] = {"continue": err.list_continue}
    return web.Response(
        body=encode(body),
        status=err.code,
        content_type="application/json",
        headers=err.headers,
    )


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(
        HTTPStatus.NOT_FOUND,
        "NotFound",
        f'{res.qualified} "{name}" not found',
        {"name": name, "group": res.group, "kind": res.plural},
    )


def json_resp(
    obj: Any, status: int = HTTPStatus.OK, headers: dict[str, str] | None = None
) -> web.Response:
    body = obj if isinstance(obj, bytes) else encode(obj)
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = _merge_patch(target.get(k), v)
    return target


def _want_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


class Api:
    """Request handling; state lives in the Cluster."""

    def __init__(self, cluster: Cluster, seed: int = 0) -> None:
        self.c = cluster
        self.fault_rng = random.Random(seed + 7919)
        self.started = time.monotonic()

    # -- plumbing ---------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024**2, middlewares=[self._middleware])
        r = app.router
        r.add_get("/version", self.version)
        r.add_get("/version/", self.version)
        for p in ("/healthz", "/readyz", "/livez"):
            r.add_get(p, self.healthz)
        r.add_get("/api", self.api_versions)
        r.add_get("/api/", self.api_versions)
        r.add_get("/apis", self.api_groups)
        r.add_get("/apis/", self.api_groups)
        r.add_get("/apis/batch", self.batch_group)
        r.add_get("/api/v1", self.resource_list)
        r.add_get("/apis/batch/v1", self.resource_list)
        r.add_route("*", "/api/v1/{rest:.+}", self.dispatch)
        r.add_route("*", "/apis/batch/v1/{rest:.+}", self.dispatch)
        r.add_get("/kubesim/stats", self.k_stats)
        r.add_get("/kubesim/faults", self.k_faults_get)
        r.add_post("/kubesim/faults", self.k_faults_set)
        r.add_delete("/kubesim/faults", self.k_faults_reset)
        r.add_post("/kubesim/nodes", self.k_add_nodes)
        r.add_post("/kubesim/nodes/{name}/ready", self.k_node_ready)
        r.add_post("/kubesim/nodes/{name}/cordon", self.k_node_cordon)
        r.add_delete("/kubesim/nodes/{name}", self.k_delete_node)
        r.add_get("/kubesim/pulls", self.k_pulls)
        r.add_post("/kubesim/compact", self.k_compact)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as err:
            self._count(request, err.code)
            return error_response(err)
        except web.HTTPNotFound:
            return error_response(
                ApiError(
                    HTTPStatus.NOT_FOUND,
                    "NotFound",
                    "the server could not find the requested resource",
                    {},
                )
            )
        except web.HTTPMethodNotAllowed:
            return error_response(
                ApiError(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
            )

    def _count(self, request: web.Request, code: int) -> None:
        verb, resource = request.get(VERB_KEY), request.get(RESOURCE_KEY)
        if verb and resource:
            self.c.requests[(verb, resource, int(code))] += 1

    async def version(self, _: web.Request) -> web.Response:
        return json_resp(K8S_VERSION)

    async def healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def api_versions(self, _: web.Request) -> web.Response:
        return json_resp(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}
                ],
            }
        )

    def _group(self) -> dict[str, Any]:
        gv = {"groupVersion": "batch/v1", "version": "v1"}
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": "batch",
            "versions": [gv],
            "preferredVersion": gv,
        }

    async def api_groups(self, _: web.Request) -> web.Response:
        g = self._group()
        g.pop("kind")
        g.pop("apiVersion")
        return json_resp({"kind": "APIGroupList", "apiVersion": "v1", "groups": [g]})

    async def batch_group(self, _: web.Request) -> web.Response:
        return json_resp(self._group())

    async def resource_list(self, request: web.Request) -> web.Response:
        gv = ("", "v1") if request.path.startswith("/api/") else ("batch", "v1")
        res = []
        for r in RESOURCES[gv].values():
            d: dict[str, Any] = {
                "name": r.plural,
                "singularName": r.kind.lower(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": list(r.verbs),
            }
            if r.short:
                d["shortNames"] = list(r.short)
            if r.categories:
                d["categories"] = list(r.categories)
            res.append(d)
            if r.kind in ("Pod", "Job", "Node", "Namespace"):
                res.append(
                    {
                        "name": f"{r.plural}/status",
                        "singularName": "",
                        "namespaced": r.namespaced,
                        "kind": r.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        return json_resp(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{gv[0]}/{gv[1]}" if gv[0] else gv[1],
                "resources": res,
            }
        )

    # -- routing ----------------------------------------------------------------------------
    def _parse(self, request: web.Request) -> tuple[Resource, str | None, str | None, str | None]:
        gv = ("", "v1") if request.path.startswith("/api/v1/") else ("batch", "v1")
        parts = [p for p in request.match_info["rest"].split("/") if p]
        table_ = RESOURCES[gv]
        ns: str | None = None
        name: str | None = None
        sub: str | None = None
        if parts[0] == "namespaces" and len(parts) >= 3:
            ns, plural, rest = parts[1], parts[2], parts[3:]
        else:
            plural, rest = parts[0], parts[1:]
        if rest:
            name = rest[0]
            sub = rest[1] if len(rest) > 1 else None
        res = table_.get(plural)
        if res is None or (ns is not None and not res.namespaced) or len(rest) > 2:
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
                {},
            )
        if sub not in (None, "status"):
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
                {},
            )
        return res, ns, name, sub

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        res, ns, name, _sub = self._parse(request)
        q = request.query
        method = request.method
        if method == "GET":
            verb = "get" if name else ("watch" if q.get("watch") in ("true", "1") else "list")
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if name else "deletecollection"
        else:
            raise ApiError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        request[VERB_KEY], request[RESOURCE_KEY] = verb, res.plural
        if method == "POST" and name:
            raise ApiError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        await self._faults(verb)
        handler = {
            "get": self.get,
            "list": self.list,
            "watch": self.watch,
            "create": self.create,
            "update": self.update,
            "patch": self.patch,
            "delete": self.delete,
            "deletecollection": self.deletecollection,
        }[verb]
        resp = await handler(request, res, ns, name)
        self._count(request, resp.status)
        return resp

    async def _faults(self, verb: str) -> None:
        f = self.c.faults
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        rng = self.fault_rng.random
        if rng() < f.http500.get(verb, f.http500.get("*", 0.0)):
            raise ApiError(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                "InternalError",
                "Internal error occurred: kubesim: injected fault",
                {"causes": [{"message": "kubesim: injected fault"}]},
            )
        if rng() < f.http429.get(verb, f.http429.get("*", 0.0)):
            ra = f.retry_after_seconds
            if self.c.scenario.control_plane.apf_plain_text_429:
                # API Priority and Fairness rejects before any handler: maxinflight.go's
                # tooManyRequests writes plain text with Retry-After, no Status object.
                raise ApiError(
                    HTTPStatus.TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                    headers={"Retry-After": str(ra)},
                    plain=True,
                )
            raise ApiError(
                HTTPStatus.TOO_MANY_REQUESTS,
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
                {"retryAfterSeconds": ra},
                {"Retry-After": str(ra)},
            )

    # -- reads ------------------------------------------------------------------------------
    def _selectors(self, request: web.Request, res: Resource) -> tuple[list[Any], list[Any]]:
        try:
            lsel = parse_label_selector(request.query.get("labelSelector"))
            fsel = parse_field_selector(
                request.query.get("fieldSelector"), supported_fields(res.kind), res.kind
            )
        except SelectorError as e:
            raise ApiError(HTTPStatus.BAD_REQUEST, "BadRequest", str(e)) from e
        return lsel, fsel

    def _ns_exists(self, ns: str) -> None:
        if self.c.store.get("Namespace", None, ns) is None:
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                "NotFound",
                f'namespaces "{ns}" not found',
                {"name": ns, "kind": "namespaces"},
            )

    def _entry(self, res: Resource, ns: str | None, name: str) -> Entry:
        e = self.c.store.get(res.kind, ns, name)
        if e is None:
            raise not_found(res, name)
        return e

    def _render_one(self, request: web.Request, res: Resource, e: Entry) -> web.Response:
        if _want_table(request):
            return json_resp(
                table(
                    res.kind,
                    res.api_version,
                    [e.obj],
                    {"resourceVersion": e.obj["metadata"]["resourceVersion"]},
                    request.query.get("includeObject", "Metadata"),
                )
            )
        return json_resp(e.raw)

    async def get(
        self, request: web.Request, res: Resource, ns: str | None, name: str | None
    ) -> web.Response:
        assert name is not None
        return self._render_one(request, res, self._entry(res, ns, name))

    async def list(
        self, request: web.Request, res: Resource, ns: str | None, name: str | None
    ) -> web.Response:
        lsel, fsel = self._selectors(request, res)
        store = self.c.store
        rv = store.rv
        items = [
            e
            for e in store.entries(res.kind, ns)
            if (not lsel or labels_match(lsel, e.labels))
            and (not fsel or fields_match(fsel, e.fields))
        ]
        items.sort(
            key=lambda e: (e.obj["metadata"].get("namespace", ""), e.obj["metadata"]["name"])
        )
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        cont = request.query.get("continue")
        if cont:
            try:
                token = json.loads(base64.urlsafe_b64decode(cont.encode()))
                start = (token["ns"], token["name"])
            except (ValueError, KeyError, TypeError, binascii.Error) as e:
                raise ApiError(
                    HTTPStatus.BAD_REQUEST,
                    "BadRequest",
                    "continue key is not valid: illegal base64 data",
                ) from e
            token_rv = int(token.get("rv", rv))
            if 0 <= token_rv <= store.compacted_default:
                # etcd3 store.go handleCompactedErrorForPaging: 410 with a fresh token that
                # continues at the latest resourceVersion (rv -1).
                fresh = {"rv": -1, "ns": start[0], "name": start[1]}
                raise ApiError(
                    HTTPStatus.GONE,
                    "Expired",
                    INCONSISTENT_CONTINUE,
                    list_continue=base64.urlsafe_b64encode(json.dumps(fresh).encode()).decode(),
                )
            items = [
                e
                for e in items
                if (e.obj["metadata"].get("namespace", ""), e.obj["metadata"]["name"]) > start
            ]
            meta["resourceVersion"] = str(token_rv if token_rv >= 0 else rv)
        limit = request.query.get("limit")
        if limit and limit.isdigit() and int(limit) > 0 and len(items) > int(limit):
            n = int(limit)
            last = items[n - 1].obj["metadata"]
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps(
                    {
                        "rv": int(meta["resourceVersion"]),
                        "ns": last.get("namespace", ""),
                        "name": last["name"],
                    }
                ).encode()
            ).decode()
            meta["remainingItemCount"] = len(items) - n
            items = items[:n]
        if _want_table(request):
            return json_resp(
                table(
                    res.kind,
                    res.api_version,
                    [e.obj for e in items],
                    meta,
                    request.query.get("includeObject", "Metadata"),
                )
            )
        head = encode({"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta})[
            :-1
        ]
        body = b"".join([head, b',"items":[', b",".join(e.raw for e in items), b"]}"])
        return json_resp(body)

    async def watch(
        self, request: web.Request, res: Resource, ns: str | None, name: str | None
    ) -> web.StreamResponse:
        lsel, fsel = self._selectors(request, res)
        q = request.query
        store = self.c.store
        faults = self.c.faults
        try:
            timeout = float(q.get("timeoutSeconds", DEFAULT_WATCH_TIMEOUT))
        except ValueError as e:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "BadRequest",
                f"invalid timeoutSeconds {q.get('timeoutSeconds')!r}",
            ) from e
        if faults.watch_disconnect_seconds:
            timeout = min(timeout, faults.watch_disconnect_seconds)
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        table_mode = _want_table(request)
        include = q.get("includeObject", "Metadata")
        rv_param = q.get("resourceVersion", "")
        initial = q.get("sendInitialEvents") == "true"

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
                    self.c.requests[("watch", res.plural, 410)] += 1
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

    # -- writes -----------------------------------------------------------------------------
    async def _body(self, request: web.Request, res: Resource) -> Any:
        ctype = request.headers.get("Content-Type", "")
        raw = await request.read()
        if "protobuf" in ctype:
            try:
                return decode_object(raw)
            except (ProtobufError, UnicodeDecodeError, IndexError) as e:
                raise ApiError(
                    HTTPStatus.BAD_REQUEST,
                    "BadRequest",
                    f"the object provided is unrecognized (must be of type {res.kind}): {e}",
                ) from e
        if "cbor" in ctype:
            raise ApiError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json, application/vnd.kubernetes.protobuf",
            )
        try:
            return json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "BadRequest",
                f"the object provided is unrecognized (must be of type {res.kind}): "
                f"couldn't get version/kind; json parse error: {e}",
            ) from e

    def _invalid(self, res: Resource, name: str, err: Invalid) -> ApiError:
        kind = res.kind if not res.group else f"{res.kind}.{res.group}"
        causes = [
            {"reason": r, "message": m.split(": ", 1)[1] if ": " in m else m, "field": f}
            for f, r, m in err.causes
        ]
        return ApiError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "Invalid",
            f'{kind} "{name}" is invalid: '
            + (
                ", ".join(m for _, _, m in err.causes)
                if len(err.causes) == 1
                else "[" + ", ".join(m for _, _, m in err.causes) + "]"
            ),
            {"name": name, "group": res.group, "kind": res.kind, "causes": causes},
        )

    async def create(
        self, request: web.Request, res: Resource, ns: str | None, name: str | None
    ) -> web.Response:
        obj = await self._body(request, res)
        if not isinstance(obj, dict):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "BadRequest",
                f"the object provided is unrecognized (must be of type {res.kind}): "
                "couldn't get version/kind; json parse error: expected an object",
            )
        if obj.get("kind") not in (None, res.kind):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "BadRequest",
                "the server rejected our request due to an error in our request: "
                f"kind {obj.get('kind')!r} does not match {res.kind!r}",
            )
        if obj.get("apiVersion") not in (None, res.api_version):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "BadRequest",
                f"the API version in the data ({obj.get('apiVersion')}) does not match the "
                f"expected API version ({res.api_version})",
            )
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "BadRequest", "metadata must be an object")
        if res.namespaced:
            assert ns is not None
            if md.get("namespace") not in (None, "", ns):
                raise ApiError(
                    HTTPStatus.BAD_REQUEST,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request",
                )
            md["namespace"] = ns
            self._ns_exists(ns)
        else:
            md.pop("namespace", None)
        shown_name = str(md.get("name") or md.get("generateName") or "")
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + "".join(
                self.c.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)
            )
        for k in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation"):
            md.pop(k, None)
        if res.kind == "Pod" and isinstance(obj.get("spec"), dict):
            seconds = self.c.scenario.control_plane.default_toleration_seconds
            add_default_tolerations(obj["spec"], seconds)
        try:
            ADMIT.get(res.kind, admit_generic)(obj)
        except Invalid as e:
            raise self._invalid(res, str(md.get("name") or ""), e) from e
        if res.kind == "Job":
            self._job_selector(obj)
        if res.kind == "Pod":
            try:
                admission.admit(self.c, obj, shown_name)
            except admission.Denied as d:
                details = {"name": d.name, "kind": "pods"} if d.reason else None
                raise ApiError(d.code, d.reason, d.message, details) from d
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif res.kind == "Job":
            obj["status"] = {}
        if "All" in request.query.getall("dryRun", []):
            md.setdefault("uid", "00000000-0000-0000-0000-000000000000")
            return json_resp(obj, HTTPStatus.CREATED)
        try:
            entry = self.c.store.create(res.kind, obj)
        except Conflict as e:
            raise ApiError(
                HTTPStatus.CONFLICT,
                "AlreadyExists",
                f'{res.qualified} "{md["name"]}" already exists',
                {"name": md["name"], "group": res.group, "kind": res.plural},
            ) from e
        if res.kind == "Job":
            self.c.job_created(entry)
        elif res.kind == "Pod":
            self.c.pod_created(entry)
        cur = self.c.store.get(res.kind, ns, md["name"])
        return json_resp((cur or entry).raw, HTTPStatus.CREATED)

    def _job_selector(self, job: dict[str, Any]) -> None:
        """The apiserver's Job defaulting: a controller-uid selector, matching template labels."""
        import uuid

        md = job["metadata"]
        md["uid"] = str(uuid.uuid4())
        uid = md["uid"]
        spec = job["spec"]
        labels = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": md["name"],
            "controller-uid": uid,
            "job-name": md["name"],
        }
        if not spec.get("manualSelector"):
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        tmd = spec["template"].setdefault("metadata", {})
        tmd["labels"] = {**(tmd.get("labels") or {}), **labels}
        md["labels"] = (
            {**labels, **(md.get("labels") or {})} if not md.get("labels") else md["labels"]
        )
        md.setdefault("annotations", {})["batch.kubernetes.io/job-tracking"] = ""

    async def update(
        self, request: web.Request, res: Resource, ns: str | None, name: str | None
    ) -> web.Response:
        assert name is not None
        e = self._entry(res, ns, name)
        obj = await self._body(request, res)
        if not isinstance(obj, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "BadRequest", "the body must be an object")
        want = (obj.get("metadata") or {}).get("resourceVersion")
        if want and want != e.obj["metadata"]["resourceVersion"]:
            raise ApiError(
                HTTPStatus.CONFLICT,
                "Conflict",
                f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                {"name": name, "group": res.group, "kind": res.plural},
            )
        return self._apply(request, res, e, obj, replace=True)

    async def patch(
        self, request: web.Request, res: Resource, ns: str | None, name: str | None
    ) -> web.Response:
        assert name is not None
        e = self._entry(res, ns, name)
        ctype = request.headers.get("Content-Type", "")
        if "json-patch" in ctype or "apply-patch" in ctype:
            raise ApiError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/merge-patch+json, application/strategic-merge-patch+json",
            )
        patch = await self._body(request, res)
        if not isinstance(patch, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "BadRequest", "the patch must be a JSON object")
        merged = _merge_patch(json.loads(e.raw), patch)
        return self._apply(request, res, e, merged, replace=False)

    def _apply(
        self, request: web.Request, res: Resource, e: Entry, new: dict[str, Any], replace: bool
    ) -> web.Response:
        """Write user changes to metadata (labels, annotations) and, for nodes, spec."""
        obj = e.obj
        nmd = new.get("metadata") or {}
        for k in ("labels", "annotations"):
            if k in nmd or replace:
                if nmd.get(k):
                    obj["metadata"][k] = nmd[k]
                else:
                    obj["metadata"].pop(k, None)
        name = obj["metadata"]["name"]
        if res.kind == "Node":
            spec = new.get("spec") or {}
            cordon = bool(spec.get("unschedulable"))
            taints = [
                t
                for t in spec.get("taints") or []
                if t.get("key") != "node.kubernetes.io/unschedulable"
            ]
            was = bool(obj["spec"].get("unschedulable"))
            kept = [
                t
                for t in obj["spec"].get("taints", [])
                if t["key"] == "node.kubernetes.io/unschedulable" and was == cordon
            ]
            obj["spec"]["taints"] = taints + kept
            if not obj["spec"]["taints"]:
                obj["spec"].pop("taints")
            if cordon != was:
                self.c.set_node_cordoned(name, cordon)
            else:
                self.c.store.update("Node", obj)
            self.c.node_patched(name)
        elif res.kind == "Job" and "spec" in new:
            if new["spec"].get("suspend") is not None:
                obj["spec"]["suspend"] = new["spec"]["suspend"]
            self.c.store.update(res.kind, obj)
            self.c.job_spec_changed(obj["metadata"]["uid"])
        elif res.kind in ("Secret",):
            for k in ("data", "stringData", "type"):
                if k in new:
                    obj[k] = new[k]
            self.c.store.update(res.kind, obj)
        else:
            self.c.store.update(res.kind, obj)
        cur = self.c.store.get(res.kind, obj["metadata"].get("namespace"), name)
        assert cur is not None
        return self._render_one(request, res, cur)

    async def _delete_options(
        self, request: web.Request, res: Resource
    ) -> tuple[str | None, int | None]:
        body = await self._body(request, res) if request.can_read_body else None
        body = body if isinstance(body, dict) else {}
        policy = request.query.get("propagationPolicy") or body.get("propagationPolicy")
        if policy is None and body.get("orphanDependents") is not None:
            policy = "Orphan" if body["orphanDependents"] else "Background"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                "Invalid",
                'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
                f'"{policy}": supported values: "Foreground", "Background", "Orphan", "nil"',
            )
        grace = request.query.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
        return policy, int(grace) if grace is not None else None

    def _delete_one(
        self, res: Resource, ns: str | None, name: str, policy: str | None, grace: int | None
    ) -> tuple[Entry | None, bool]:
        if res.kind == "Job":
            return self.c.delete_job(ns or "", name, policy)
        if res.kind == "Pod":
            entry = self.c.delete_pod(ns or "", name, grace)
            return entry, self.c.store.get("Pod", ns, name) is not None
        if res.kind == "Node":
            entry = self.c.store.get("Node", None, name)
            self.c.delete_node(name)
            return entry, False
        if res.kind == "Namespace":
            if name in ("default", "kube-system"):
                raise ApiError(
                    HTTPStatus.FORBIDDEN,
                    "Forbidden",
                    f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                )
            for kind in ("Job", "Pod", "Event", "Secret"):
                for e in list(self.c.store.entries(kind, name)):
                    self._delete_one(
                        next(r for t in RESOURCES.values() for r in t.values() if r.kind == kind),
                        name,
                        e.obj["metadata"]["name"],
                        "Background",
                        0,
                    )
        return self.c.store.delete(res.kind, ns, name), False

    async def delete(
        self, request: web.Request, res: Resource, ns: str | None, name: str | None
    ) -> web.Response:
        assert name is not None
        self._entry(res, ns, name)
        policy, grace = await self._delete_options(request, res)
        headers = {"Warning": JOB_ORPHAN_WARNING} if res.kind == "Job" and policy is None else None
        entry, pending = self._delete_one(res, ns, name, policy, grace)
        assert entry is not None
        return json_resp(
            entry.raw,
            HTTPStatus.ACCEPTED if pending and res.kind == "Job" else HTTPStatus.OK,
            headers,
        )

    async def deletecollection(
        self, request: web.Request, res: Resource, ns: str | None, name: str | None
    ) -> web.Response:
        lsel, fsel = self._selectors(request, res)
        policy, grace = await self._delete_options(request, res)
        targets = [
            e.obj["metadata"]["name"]
            for e in self.c.store.entries(res.kind, ns)
            if labels_match(lsel, e.labels) and fields_match(fsel, e.fields)
        ]
        deleted = []
        for n in targets:
            entry, _ = self._delete_one(res, ns, n, policy, grace)
            if entry is not None:
                deleted.append(entry.raw)
        head = encode(
            {
                "kind": f"{res.kind}List",
                "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(self.c.store.rv)},
            }
        )[:-1]
        headers = {"Warning": JOB_ORPHAN_WARNING} if res.kind == "Job" and policy is None else None
        return json_resp(
            b"".join([head, b',"items":[', b",".join(deleted), b"]}"]), headers=headers
        )

    # -- /kubesim ---------------------------------------------------------------------------
    async def k_stats(self, _: web.Request) -> web.Response:
        return json_resp(self.c.stats())

    async def k_faults_get(self, _: web.Request) -> web.Response:
        return json_resp(self.c.faults.model_dump(by_alias=True))

    async def k_faults_set(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            merged = {**self.c.faults.model_dump(by_alias=True), **body}
            self.c.faults = Faults.model_validate(merged)
        except ValidationError as e:
            return json_resp(
                {"error": "invalid faults", "detail": json.loads(e.json())},
                HTTPStatus.UNPROCESSABLE_ENTITY,
            )
        except (ValueError, TypeError) as e:
            return json_resp({"error": f"malformed JSON: {e}"}, HTTPStatus.BAD_REQUEST)
        return json_resp(self.c.faults.model_dump(by_alias=True))

    async def k_faults_reset(self, _: web.Request) -> web.Response:
        self.c.faults = Faults()
        return json_resp(self.c.faults.model_dump(by_alias=True))

    async def _flag(self, request: web.Request, key: str) -> bool:
        try:
            body = await request.json()
            value = body[key]
        except (ValueError, KeyError, TypeError) as e:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, "BadRequest", f'body must be {{"{key}": true|false}}'
            ) from e
        if not isinstance(value, bool):
            raise ApiError(HTTPStatus.BAD_REQUEST, "BadRequest", f"{key} must be a boolean")
        return value

    def _node_or_404(self, name: str) -> None:
        if name not in self.c.nodes:
            raise not_found(RESOURCES[("", "v1")]["nodes"], name)

    async def k_node_ready(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._node_or_404(name)
        ready = await self._flag(request, "ready")
        body = await request.json()  # aiohttp caches the body _flag read
        mode = body.get("mode", "unreachable") if isinstance(body, dict) else "unreachable"
        if mode not in ("unreachable", "notReady", "partitioned"):
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                "Invalid",
                "mode: must be 'unreachable', 'notReady' or 'partitioned'",
            )
        self.c.set_node_ready(name, ready, mode)
        return json_resp(self._entry(RESOURCES[("", "v1")]["nodes"], None, name).raw)

    async def k_node_cordon(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._node_or_404(name)
        self.c.set_node_cordoned(name, await self._flag(request, "cordoned"))
        return json_resp(self._entry(RESOURCES[("", "v1")]["nodes"], None, name).raw)

    async def k_delete_node(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._node_or_404(name)
        self.c.delete_node(name)
        return json_resp({"deleted": name})

    async def k_add_nodes(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            count = int(body.get("count", 1))
            group = body.get("group")
        except (ValueError, TypeError, AttributeError) as e:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, "BadRequest", 'body must be {"count": N, "group": "name"}'
            ) from e
        if count < 1 or (
            group is not None and group not in {g.name for g in self.c.scenario.node_groups}
        ):
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                "Invalid",
                "count must be >= 1 and group an existing node group",
            )
        return json_resp({"added": self.c.add_nodes(count, group)})

    async def k_pulls(self, _: web.Request) -> web.Response:
        return json_resp(
            [
                {"node": n, "image": i, "count": c}
                for (n, i), c in sorted(self.c.pull_counts.items())
            ]
        )

    async def k_compact(self, _: web.Request) -> web.Response:
        self.c.store.compact()
        return json_resp({"compactedResourceVersion": self.c.store.rv})
