"""The HTTP face of kubesim: the Kubernetes REST API (discovery, CRUD, list, watch, Table) on
aiohttp, plus the `/kubesim/` control and stats endpoints."""

from __future__ import annotations

import asyncio
import random
import time
from http import HTTPStatus
from typing import Any

from aiohttp import web

from kubesim.api_common import (
    COUNTED_KEY,
    RESOURCE_KEY,
    RESOURCES,
    VERB_KEY,
    ApiError,
    Resource,
    error_response,
)
from kubesim.cluster import Cluster
from kubesim.control import Control
from kubesim.discovery import Discovery
from kubesim.reads import Reads
from kubesim.watch import Watch
from kubesim.writes import Writes

# The fault stream gets its own generator, so injecting faults never shifts the cluster's seeded
# choices (placement, jitter, names); the offset only makes the two sequences differ.
FAULT_SEED_OFFSET = 7919
# aiohttp's default (1 MiB) would refuse bodies the API server takes (its limit is 3 MiB).
MAX_BODY_BYTES = 16 * 1024**2


class Api:
    """Request handling; state lives in the Cluster."""

    def __init__(self, cluster: Cluster, seed: int = 0) -> None:
        self.cluster = cluster
        self.fault_rng = random.Random(seed + FAULT_SEED_OFFSET)
        self.started = time.monotonic()
        self.discovery = Discovery(self)
        self.reads = Reads(self)
        self.watch = Watch(self)
        self.writes = Writes(self)
        self.control = Control(self)

    # -- plumbing ---------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._middleware])
        r = app.router
        r.add_get("/version", self.discovery.version)
        r.add_get("/version/", self.discovery.version)
        for p in ("/healthz", "/readyz", "/livez"):
            r.add_get(p, self.discovery.healthz)
        r.add_get("/api", self.discovery.api_versions)
        r.add_get("/api/", self.discovery.api_versions)
        r.add_get("/apis", self.discovery.api_groups)
        r.add_get("/apis/", self.discovery.api_groups)
        r.add_get("/apis/batch", self.discovery.batch_group)
        r.add_get("/api/v1", self.discovery.resource_list)
        r.add_get("/apis/batch/v1", self.discovery.resource_list)
        r.add_route("*", "/api/v1/{rest:.+}", self.dispatch)
        r.add_route("*", "/apis/batch/v1/{rest:.+}", self.dispatch)
        r.add_get("/kubesim/stats", self.control.control_stats)
        r.add_get("/kubesim/faults", self.control.control_faults_get)
        r.add_post("/kubesim/faults", self.control.control_faults_set)
        r.add_delete("/kubesim/faults", self.control.control_faults_reset)
        r.add_post("/kubesim/nodes", self.control.control_add_nodes)
        r.add_post("/kubesim/nodes/{name}/ready", self.control.control_node_ready)
        r.add_post("/kubesim/nodes/{name}/cordon", self.control.control_node_cordon)
        r.add_post("/kubesim/nodes/{name}/disk-pressure", self.control.control_node_disk_pressure)
        r.add_delete("/kubesim/nodes/{name}", self.control.control_delete_node)
        r.add_post("/kubesim/autoscaler/join", self.control.control_join_nodes)
        r.add_post("/kubesim/autoscaler/leave", self.control.control_leave_nodes)
        r.add_get("/kubesim/autoscaler", self.control.control_autoscaler)
        r.add_get("/kubesim/pulls", self.control.control_pulls)
        r.add_post("/kubesim/compact", self.control.control_compact)
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
        if verb and resource and not request.get(COUNTED_KEY, False):
            self.cluster.requests[(verb, resource, int(code))] += 1

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
        query = request.query
        method = request.method
        if method == "GET":
            verb = "get" if name else ("watch" if query.get("watch") in ("true", "1") else "list")
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
            "get": self.reads.get,
            "list": self.reads.list,
            "watch": self.watch.watch,
            "create": self.writes.create,
            "update": self.writes.update,
            "patch": self.writes.patch,
            "delete": self.writes.delete,
            "deletecollection": self.writes.deletecollection,
        }[verb]
        resp = await handler(request, res, ns, name)
        self._count(request, resp.status)
        return resp

    async def _faults(self, verb: str) -> None:
        f = self.cluster.faults
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
            if self.cluster.scenario.control_plane.apf_plain_text_429:
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

    # -- writes -----------------------------------------------------------------------------

    # -- /kubesim ---------------------------------------------------------------------------
