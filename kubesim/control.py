"""The control endpoints under /kubesim/: stats, faults, node readiness, cordon, disk pressure,
add and delete, pull counts and history compaction. Tests and `kubesim.testing` drive the
simulation here.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from kubesim import autoscaler
from kubesim.api_common import (
    RESOURCES,
    ApiError,
    json_resp,
    not_found,
)
from kubesim.scenario import Faults, Taint

if TYPE_CHECKING:
    from kubesim.server import Api


class Control:
    def __init__(self, api: Api) -> None:
        self.api = api

    async def control_stats(self, _: web.Request) -> web.Response:
        return json_resp(self.api.cluster.stats())

    async def control_faults_get(self, _: web.Request) -> web.Response:
        return json_resp(self.api.cluster.faults.model_dump(by_alias=True))

    async def control_faults_set(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            merged = {**self.api.cluster.faults.model_dump(by_alias=True), **body}
            self.api.cluster.faults = Faults.model_validate(merged)
        except ValidationError as e:
            return json_resp(
                {"error": "invalid faults", "detail": json.loads(e.json())},
                HTTPStatus.UNPROCESSABLE_ENTITY,
            )
        except (ValueError, TypeError) as e:
            return json_resp({"error": f"malformed JSON: {e}"}, HTTPStatus.BAD_REQUEST)
        return json_resp(self.api.cluster.faults.model_dump(by_alias=True))

    async def control_faults_reset(self, _: web.Request) -> web.Response:
        self.api.cluster.faults = Faults()
        return json_resp(self.api.cluster.faults.model_dump(by_alias=True))

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
        if name not in self.api.cluster.nodes:
            raise not_found(RESOURCES[("", "v1")]["nodes"], name)

    async def control_node_ready(self, request: web.Request) -> web.Response:
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
        self.api.cluster.set_node_ready(name, ready, mode)
        return json_resp(self.api.reads.entry(RESOURCES[("", "v1")]["nodes"], None, name).raw)

    async def control_node_cordon(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._node_or_404(name)
        self.api.cluster.set_node_cordoned(name, await self._flag(request, "cordoned"))
        return json_resp(self.api.reads.entry(RESOURCES[("", "v1")]["nodes"], None, name).raw)

    async def control_node_disk_pressure(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._node_or_404(name)
        pressure = await self._flag(request, "diskPressure")
        self.api.cluster.set_node_disk_pressure(name, pressure)
        return json_resp(self.api.reads.entry(RESOURCES[("", "v1")]["nodes"], None, name).raw)

    async def control_delete_node(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._node_or_404(name)
        self.api.cluster.delete_node(name)
        return json_resp({"deleted": name})

    async def control_add_nodes(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            count = int(body.get("count", 1))
            group = body.get("group")
        except (ValueError, TypeError, AttributeError) as e:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, "BadRequest", 'body must be {"count": N, "group": "name"}'
            ) from e
        scenario = self.api.cluster.scenario
        if count < 1 or (group is not None and group not in {g.name for g in scenario.node_groups}):
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                "Invalid",
                "count must be >= 1 and group an existing node group",
            )
        return json_resp({"added": self.api.cluster.add_nodes(count, group)})

    async def control_join_nodes(self, request: web.Request) -> web.Response:
        """Nodes join like an autoscaler's (autoscaler.py): NotReady, startup taints, Ready later.
        Body: {"count", "group", "readyAfterSeconds", "taintsRemovedAfterSeconds",
        "startupTaints": [{"key", "value", "effect"}], "lifetimeSeconds"}, all optional."""
        body = await self._body(request)
        cluster = self.api.cluster
        known = {
            "count",
            "group",
            "readyAfterSeconds",
            "taintsRemovedAfterSeconds",
            "startupTaints",
            "lifetimeSeconds",
        }
        unknown = sorted(set(body) - known)
        if unknown:
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY, "Invalid", f"{unknown[0]}: unknown field"
            )
        count = body.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY, "Invalid", "count: must be an integer >= 1"
            )
        group = body.get("group")
        if group is not None and group not in {g.name for g in cluster.scenario.node_groups}:
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, "Invalid", "group: no such node group")
        delays: dict[str, float] = {}
        for key, arg in (
            ("readyAfterSeconds", "ready_after"),
            ("taintsRemovedAfterSeconds", "taints_removed_after"),
            ("lifetimeSeconds", "lifetime"),
        ):
            value = body.get(key)
            if value is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ApiError(
                    HTTPStatus.UNPROCESSABLE_ENTITY, "Invalid", f"{key}: must be a number >= 0"
                )
            delays[arg] = float(value)
        taints = None
        if "startupTaints" in body:
            try:
                taints = [Taint.model_validate(t) for t in body["startupTaints"]]
            except (ValidationError, TypeError) as e:
                raise ApiError(
                    HTTPStatus.UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "startupTaints: a list of {key, value, effect} with effect NoSchedule, "
                    "PreferNoSchedule or NoExecute",
                ) from e
        names = autoscaler.join(cluster, count, group, startup_taints=taints, **delays)
        return json_resp({"joined": names})

    async def control_leave_nodes(self, request: web.Request) -> web.Response:
        """Scale down: {"nodes": [names]} or {"count": N} (the oldest joined nodes)."""
        body = await self._body(request)
        names, count = body.get("nodes"), body.get("count")
        if (names is None) == (count is None):
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, "Invalid", 'give "nodes" or "count"')
        if names is not None and not (
            isinstance(names, list) and all(isinstance(n, str) for n in names)
        ):
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, "Invalid", "nodes: a list of names")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY, "Invalid", "count: must be an integer >= 1"
            )
        for name in names or []:
            self._node_or_404(name)
        return json_resp({"left": autoscaler.leave(self.api.cluster, names, count)})

    async def control_autoscaler(self, _: web.Request) -> web.Response:
        return json_resp(autoscaler.report(self.api.cluster))

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError as e:
            raise ApiError(HTTPStatus.BAD_REQUEST, "BadRequest", f"malformed JSON: {e}") from e
        if not isinstance(body, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "BadRequest", "body must be a JSON object")
        return body

    async def control_pulls(self, _: web.Request) -> web.Response:
        first = self.api.cluster.first_pulled
        return json_resp(
            [
                {"node": n, "image": i, "count": c, "firstAt": first.get((n, i))}
                for (n, i), c in sorted(self.api.cluster.pull_counts.items())
            ]
        )

    async def control_compact(self, _: web.Request) -> web.Response:
        self.api.cluster.store.compact()
        return json_resp({"compactedResourceVersion": self.api.cluster.store.rv})
