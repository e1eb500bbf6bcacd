"""Label and field selectors with the apiserver's grammar and error messages."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class SelectorError(ValueError):
    """A selector the apiserver would reject with 400 BadRequest."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects without the key, as in Kubernetes.
        return not present or labels[self.key] not in self.values


_KEY = re.compile(
    r"^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?/)?[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$"
)
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


_SET_RE = re.compile(r"^(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s*\((?P<vals>[^)]*)\)$")
_EQ_RE = re.compile(r"^(?P<key>[^\s!=()]+)\s*(?P<op>==|!=|=)\s*(?P<val>[^\s()]*)$")


def _check_key(key: str, raw: str) -> None:
    if not _KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise SelectorError(
            f"unable to parse requirement: values[0][{key}]: Invalid value: {raw!r}: "
            "name part must consist of alphanumeric characters, '-', '_' or '.'"
        )


def _check_value(value: str, key: str) -> None:
    if len(value) > 63 or not _VALUE.match(value):
        raise SelectorError(
            f"unable to parse requirement: values[0][{key}]: Invalid value: {value!r}: "
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character"
        )


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse `a=b,c!=d,e in (x,y),f notin (z),g,!h`; raise SelectorError like the apiserver."""
    if not text:
        return []
    reqs: list[Requirement] = []
    for part in _split_top(text):
        if m := _SET_RE.match(part):
            key = m["key"]
            _check_key(key, part)
            vals = [v.strip() for v in m["vals"].split(",") if v.strip()]
            if not vals:
                raise SelectorError(
                    f"unable to parse requirement: found ')', expected: identifier in {part!r}"
                )
            for v in vals:
                _check_value(v, key)
            reqs.append(Requirement(key, m["op"], frozenset(vals)))
        elif m := _EQ_RE.match(part):
            key, op, val = m["key"], m["op"], m["val"]
            _check_key(key, part)
            _check_value(val, key)
            reqs.append(Requirement(key, "!=" if op == "!=" else "=", frozenset([val])))
        elif part.startswith("!"):
            key = part[1:].strip()
            _check_key(key, part)
            reqs.append(Requirement(key, "!", frozenset()))
        elif re.match(r"^[^\s!=(),]+$", part):
            _check_key(part, part)
            reqs.append(Requirement(part, "exists", frozenset()))
        else:
            raise SelectorError(f"unable to parse requirement: invalid label selector {part!r}")
    return reqs


def labels_match(reqs: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    lab = labels or {}
    return all(r.matches(lab) for r in reqs)


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    negate: bool
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        return (fields.get(self.field, "") == self.value) != self.negate


def parse_field_selector(
    text: str | None, supported: frozenset[str], kind: str
) -> list[FieldRequirement]:
    """Parse `a=b,c!=d`; unknown fields are rejected with the apiserver's message."""
    if not text:
        return []
    reqs: list[FieldRequirement] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = re.match(r"^(?P<f>[^!=]+)(?P<op>==|!=|=)(?P<v>.*)$", part)
        if not m:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field = m["f"].strip()
        if field not in supported:
            raise SelectorError(
                f"field label not supported: {field}"
                if kind != "Event"
                else f'"{field}" is not a known field selector: only '
                f'"{", ".join(sorted(supported))}"'
            )
        reqs.append(FieldRequirement(field, m["op"] == "!=", m["v"].strip()))
    return reqs


def fields_match(reqs: list[FieldRequirement], fields: Mapping[str, str]) -> bool:
    return all(r.matches(fields) for r in reqs)


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    cur: Any = obj
    for p in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(p)
    return cur


def _field_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


FieldFn = Callable[[Mapping[str, Any]], dict[str, str]]


def _meta_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    md = obj.get("metadata", {})
    return {
        "metadata.name": _field_text(md.get("name")),
        "metadata.namespace": _field_text(md.get("namespace")),
    }


def _pod_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    f = _meta_fields(obj)
    f["spec.nodeName"] = _field_text(_get(obj, "spec", "nodeName"))
    f["spec.restartPolicy"] = _field_text(_get(obj, "spec", "restartPolicy"))
    f["spec.schedulerName"] = _field_text(_get(obj, "spec", "schedulerName"))
    f["spec.serviceAccountName"] = _field_text(_get(obj, "spec", "serviceAccountName"))
    f["status.phase"] = _field_text(_get(obj, "status", "phase"))
    f["status.podIP"] = _field_text(_get(obj, "status", "podIP"))
    f["status.nominatedNodeName"] = _field_text(_get(obj, "status", "nominatedNodeName"))
    return f


def _node_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    f = _meta_fields(obj)
    f["spec.unschedulable"] = _field_text(bool(_get(obj, "spec", "unschedulable")))
    return f


def _event_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    f = _meta_fields(obj)
    io = obj.get("involvedObject", {}) or {}
    for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"):
        f[f"involvedObject.{k}"] = _field_text(io.get(k))
    f["reason"] = _field_text(obj.get("reason"))
    f["reportingComponent"] = _field_text(obj.get("reportingComponent"))
    f["source"] = _field_text(_get(obj, "source", "component"))
    f["type"] = _field_text(obj.get("type"))
    return f


def _job_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    f = _meta_fields(obj)
    f["status.successful"] = _field_text(_get(obj, "status", "succeeded") or 0)
    return f


def _ns_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    f = _meta_fields(obj)
    f["status.phase"] = _field_text(_get(obj, "status", "phase"))
    return f


def _secret_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    f = _meta_fields(obj)
    f["type"] = _field_text(obj.get("type"))
    return f


FIELD_FUNCS: dict[str, FieldFn] = {
    "Pod": _pod_fields,
    "Node": _node_fields,
    "Event": _event_fields,
    "Job": _job_fields,
    "Namespace": _ns_fields,
    "Secret": _secret_fields,
}


def fields_of(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    return FIELD_FUNCS.get(kind, _meta_fields)(obj)


def supported_fields(kind: str) -> frozenset[str]:
    sample: dict[str, Any] = {"metadata": {}}
    return frozenset(fields_of(kind, sample))
