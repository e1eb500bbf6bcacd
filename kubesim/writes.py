"""Writes: create (with generateName and admission), update, patch (merge and
strategic-merge bodies, merged as JSON merge patches), delete and
deletecollection (with propagation policy and grace period).
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kubesim import admission
from kubesim.api_common import (
    ADMIT,
    JOB_ORPHAN_WARNING,
    RESOURCES,
    ApiError,
    Resource,
    _merge_patch,
    json_resp,
)
from kubesim.protobuf import ProtobufError, decode_object
from kubesim.selectors import (
    fields_match,
    labels_match,
)
from kubesim.state import generated_suffix
from kubesim.store import Conflict, Entry, encode
from kubesim.validation import (
    Invalid,
    add_default_tolerations,
    admit_generic,
)

if TYPE_CHECKING:
    from kubesim.server import Api


class Writes:
    def __init__(self, api: Api) -> None:
        self.api = api

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
            self.api.reads.require_namespace(ns)
        else:
            md.pop("namespace", None)
        shown_name = str(md.get("name") or md.get("generateName") or "")
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + generated_suffix(self.api.cluster.rng)
        for k in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation"):
            md.pop(k, None)
        if res.kind == "Pod" and isinstance(obj.get("spec"), dict):
            seconds = self.api.cluster.scenario.control_plane.default_toleration_seconds
            add_default_tolerations(obj["spec"], seconds)
        try:
            ADMIT.get(res.kind, admit_generic)(obj)
        except Invalid as e:
            raise self._invalid(res, str(md.get("name") or ""), e) from e
        if res.kind == "Job":
            self._job_selector(obj)
        if res.kind == "Pod":
            try:
                admission.admit(self.api.cluster, obj, shown_name)
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
            entry = self.api.cluster.store.create(res.kind, obj)
        except Conflict as e:
            raise ApiError(
                HTTPStatus.CONFLICT,
                "AlreadyExists",
                f'{res.qualified} "{md["name"]}" already exists',
                {"name": md["name"], "group": res.group, "kind": res.plural},
            ) from e
        if res.kind == "Job":
            self.api.cluster.job_created(entry)
        elif res.kind == "Pod":
            self.api.cluster.pod_created(entry)
        cur = self.api.cluster.store.get(res.kind, ns, md["name"])
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
        e = self.api.reads.entry(res, ns, name)
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
        e = self.api.reads.entry(res, ns, name)
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
                self.api.cluster.set_node_cordoned(name, cordon)
            else:
                self.api.cluster.store.update("Node", obj)
            self.api.cluster.node_patched(name)
        elif res.kind == "Job" and "spec" in new:
            if new["spec"].get("suspend") is not None:
                obj["spec"]["suspend"] = new["spec"]["suspend"]
            self.api.cluster.store.update(res.kind, obj)
            self.api.cluster.job_spec_changed(obj["metadata"]["uid"])
        elif res.kind in ("Secret",):
            for k in ("data", "stringData", "type"):
                if k in new:
                    obj[k] = new[k]
            self.api.cluster.store.update(res.kind, obj)
        else:
            self.api.cluster.store.update(res.kind, obj)
        cur = self.api.cluster.store.get(res.kind, obj["metadata"].get("namespace"), name)
        assert cur is not None
        return self.api.reads.render_one(request, res, cur)

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
            return self.api.cluster.delete_job(ns or "", name, policy)
        if res.kind == "Pod":
            entry = self.api.cluster.delete_pod(ns or "", name, grace)
            return entry, self.api.cluster.store.get("Pod", ns, name) is not None
        if res.kind == "Node":
            entry = self.api.cluster.store.get("Node", None, name)
            self.api.cluster.delete_node(name)
            return entry, False
        if res.kind == "Namespace":
            if name in ("default", "kube-system"):
                raise ApiError(
                    HTTPStatus.FORBIDDEN,
                    "Forbidden",
                    f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                )
            for kind in ("Job", "Pod", "Event", "Secret"):
                for e in list(self.api.cluster.store.entries(kind, name)):
                    self._delete_one(
                        next(r for t in RESOURCES.values() for r in t.values() if r.kind == kind),
                        name,
                        e.obj["metadata"]["name"],
                        "Background",
                        0,
                    )
        return self.api.cluster.store.delete(res.kind, ns, name), False

    async def delete(
        self, request: web.Request, res: Resource, ns: str | None, name: str | None
    ) -> web.Response:
        assert name is not None
        self.api.reads.entry(res, ns, name)
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
        lsel, fsel = self.api.reads.parse_selectors(request, res)
        policy, grace = await self._delete_options(request, res)
        targets = [
            e.obj["metadata"]["name"]
            for e in self.api.cluster.store.entries(res.kind, ns)
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
                "metadata": {"resourceVersion": str(self.api.cluster.store.rv)},
            }
        )[:-1]
        headers = {"Warning": JOB_ORPHAN_WARNING} if res.kind == "Job" and policy is None else None
        return json_resp(
            b"".join([head, b',"items":[', b",".join(deleted), b"]}"]), headers=headers
        )
