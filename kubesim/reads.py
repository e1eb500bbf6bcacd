"""Reads: get and list (label and field selectors, limit/continue, Table output), and the
lookups the writes share (the object, its namespace).
"""

from __future__ import annotations

import base64
import binascii
import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kubesim.api_common import (
    INCONSISTENT_CONTINUE,
    ApiError,
    Resource,
    _want_table,
    json_resp,
    not_found,
)
from kubesim.selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
    supported_fields,
)
from kubesim.store import Entry, encode
from kubesim.tables import table

if TYPE_CHECKING:
    from kubesim.server import Api


class Reads:
    def __init__(self, api: Api) -> None:
        self.api = api

    def parse_selectors(self, request: web.Request, res: Resource) -> tuple[list[Any], list[Any]]:
        try:
            lsel = parse_label_selector(request.query.get("labelSelector"))
            fsel = parse_field_selector(
                request.query.get("fieldSelector"), supported_fields(res.kind), res.kind
            )
        except SelectorError as e:
            raise ApiError(HTTPStatus.BAD_REQUEST, "BadRequest", str(e)) from e
        return lsel, fsel

    def require_namespace(self, ns: str) -> None:
        if self.api.cluster.store.get("Namespace", None, ns) is None:
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                "NotFound",
                f'namespaces "{ns}" not found',
                {"name": ns, "kind": "namespaces"},
            )

    def entry(self, res: Resource, ns: str | None, name: str) -> Entry:
        e = self.api.cluster.store.get(res.kind, ns, name)
        if e is None:
            raise not_found(res, name)
        return e

    def render_one(self, request: web.Request, res: Resource, e: Entry) -> web.Response:
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
        return self.render_one(request, res, self.entry(res, ns, name))

    async def list(
        self, request: web.Request, res: Resource, ns: str | None, name: str | None
    ) -> web.Response:
        lsel, fsel = self.parse_selectors(request, res)
        store = self.api.cluster.store
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
