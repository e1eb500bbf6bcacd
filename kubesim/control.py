"""The control endpoints under /kubesim/: stats, faults, node readiness, cordon, add and delete,
pull counts and history compaction. Tests and `kubesim.testing` drive the simulation here.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import ValidationError

from kubesim.api_common import (
    RESOURCES,
    ApiError,
    json_resp,
    not_found,
)
from kubesim.scenario import Faults

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

    async def control_pulls(self, _: web.Request) -> web.Response:
        return json_resp(
            [
                {"node": n, "image": i, "count": c}
                for (n, i), c in sorted(self.api.cluster.pull_counts.items())
            ]
        )

    async def control_compact(self, _: web.Request) -> web.Response:
        self.api.cluster.store.compact()
        return json_resp({"compactedResourceVersion": self.api.cluster.store.rv})
