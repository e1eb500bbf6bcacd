"""The API's shared vocabulary: the served resources, the Status error body and JSON responses."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web

from kubesim.store import encode
from kubesim.validation import (
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
# Without timeoutSeconds the API server ends a watch after --min-request-timeout (1800 s) times a
# random factor in [1, 2) (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/get.go); kubesim
# takes the lower bound, so the end is predictable.
DEFAULT_WATCH_TIMEOUT = 1800.0
VERB_KEY = web.RequestKey("kubesim_verb", str)
RESOURCE_KEY = web.RequestKey("kubesim_resource", str)
# Set once a request has been counted in the stats before it ends: a watch is counted when its
# stream starts (as an audit log's ResponseStarted stage records it), not when it closes, so a
# test reading the stats sees a watch that is still open.
COUNTED_KEY = web.RequestKey("kubesim_counted", bool)
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
