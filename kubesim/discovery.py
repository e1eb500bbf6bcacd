"""Discovery: /version, the health checks, /api, /apis and the resource lists that clients and
`kubectl` read before anything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from kubesim.api_common import (
    K8S_VERSION,
    RESOURCES,
    json_resp,
)

if TYPE_CHECKING:
    from kubesim.server import Api


class Discovery:
    def __init__(self, api: Api) -> None:
        self.api = api

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
