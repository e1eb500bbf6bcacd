"""The shape of an object for golden-fixture comparison: what a consumer of the API relies on
(phase, conditions, container states, reasons, exit codes, messages, counts), with the names,
uids, timestamps and ids that differ between runs normalized away."""

from __future__ import annotations

import re
from typing import Any

_POD_NAME = re.compile(r"(?<![a-z0-9-])([a-z0-9]+)-[bcdfghjklmnpqrstvwxz2456789]{5}(?![a-z0-9-])")
_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX = re.compile(r"\b[0-9a-f]{64}\b")
_TIME = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\b")


def norm(value: Any) -> Any:
    if isinstance(value, str):
        v = _UID.sub("<uid>", value)
        v = _HEX.sub("<id>", v)
        v = _TIME.sub("<time>", v)
        return _POD_NAME.sub(r"\1-xxxxx", v)
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items()}
    if isinstance(value, list):
        return [norm(v) for v in value]
    return value


def _conditions(obj: dict[str, Any], with_message: bool = True) -> list[tuple[Any, ...]]:
    out = []
    for c in (obj.get("status") or {}).get("conditions") or []:
        row: tuple[Any, ...] = (c["type"], c["status"], c.get("reason"))
        if with_message:
            row += (norm(c.get("message")),)
        out.append(row)
    return out


def _state(cs: dict[str, Any]) -> tuple[Any, ...]:
    ((kind, st),) = cs["state"].items()
    return (
        cs["name"],
        kind,
        st.get("reason"),
        st.get("exitCode"),
        norm(st.get("message")),
        cs.get("restartCount"),
    )


def shape(obj: dict[str, Any]) -> dict[str, Any]:
    kind = obj["kind"]
    md = obj["metadata"]
    out: dict[str, Any] = {"kind": kind, "terminating": bool(md.get("deletionTimestamp"))}
    st = obj.get("status") or {}
    if kind == "Pod":
        out["phase"] = st.get("phase")
        out["conditions"] = sorted(_conditions(obj), key=repr)
        out["containers"] = [_state(c) for c in st.get("containerStatuses") or []]
        out["initContainers"] = [_state(c) for c in st.get("initContainerStatuses") or []]
    elif kind == "Job":
        out["conditions"] = _conditions(obj)
        out["counts"] = {k: st.get(k) for k in ("active", "failed", "succeeded", "terminating")}
    elif kind == "Event":
        out.update(
            type=obj["type"],
            reason=obj["reason"],
            message=norm(obj["message"]),
            component=obj["source"]["component"],
            involved=obj["involvedObject"]["kind"],
        )
    elif kind == "Node":
        out["conditions"] = _conditions(obj)
        out["taints"] = sorted((t["key"], t["effect"]) for t in obj["spec"].get("taints") or [])
    return out
