"""The task's failure log: failed-node details kept bounded as failures grow.

Pure bookkeeping over the state's `failed_node_details` list (no workflow calls, no commands),
so the workflow's history does not depend on it.

Everything in the state and the view that grows with the node count is bounded, so a task at
the API's maximum sizes (10,000 nodeNames, every node failed) stays far below Temporal's 2 MiB
payload limit (measured in tests/workflows/test_payloads.py):
- failure details: full up to FULL_DETAIL_BYTES; then messages are cut to SHORT_MESSAGE_CHARS
  and a message repeating the previous one for the same image and reason is left empty; past
  GROUP_AFTER_BYTES, further failed nodes are listed GROUP_SIZE to an entry per reason (the
  entry's message names them all, a space between two), which costs a byte or so per node on
  top of its name;
- missing nodeNames: past 100, the listing reports them GROUP_SIZE to a sorted range, one
  failure entry each (activities/prewarm.py);
- the echoed nodeNames: the first NODE_NAMES_SHOWN in the view and in the continue-as-new
  input (workflows/view.py).
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from common.engine import MissingNodes, NodeOutcome, trim
    from common.models import FailedNodeDetail, FailureReason

FULL_DETAIL_BYTES = 32 * 1024
GROUP_AFTER_BYTES = 128 * 1024
SHORT_MESSAGE_CHARS = 80
GROUP_SIZE = 1000
_DETAIL_OVERHEAD = 90  # JSON keys, reason and timestamp of one detail


NO_OUTCOME = "no outcome reported for this node"


def failed(node: str, reason: FailureReason, message: str, now: datetime) -> NodeOutcome:
    """The outcome of a node that failed for a reason the workflow itself found."""
    detail = FailedNodeDetail(node_name=node, reason=reason, message=message, timestamp=now)
    return NodeOutcome(node_name=node, ok=False, failure=detail)


def missing_node(name: str) -> str:
    return f"node {name!r} named in nodeNames does not exist"


def missing_range(group: MissingNodes, now: datetime) -> FailedNodeDetail:
    """One entry for a sorted range of nodeNames that do not exist."""
    return FailedNodeDetail(
        node_name=f"{group.first} (+{group.count - 1} more)",
        reason=FailureReason.NODE_GONE,
        message=f"{group.count} nodes named in nodeNames do not exist, sorted from "
        f"{group.first} to {group.last}",
        timestamp=now,
    )


def detail_size(node: str, image: str | None, message: str) -> int:
    """The bytes one failure detail adds to the state, about."""
    return len(node) + len(image or "") + len(message) + _DETAIL_OVERHEAD


class FailureLog:
    """Appends failed-node details to `details` (the state's list), compacted then grouped."""

    def __init__(self, details: list[FailedNodeDetail]) -> None:
        self._details = details
        self._last_message: dict[tuple[str | None, FailureReason], str] = {}
        self._groups: dict[FailureReason, tuple[FailedNodeDetail, str, int]] = {}
        self._bytes = sum(detail_size(d.node_name, d.image, d.message) for d in details)

    def add(self, detail: FailedNodeDetail) -> None:
        """One failed node: in full, compacted, or named in its reason's group entry."""
        if self._bytes >= GROUP_AFTER_BYTES:
            self._group(detail, "failed with the same reason:")
        else:
            self._details.append(self._compact(detail))

    def add_entry(self, detail: FailedNodeDetail) -> None:
        """An entry that already stands for several nodes (a range of missing nodeNames)."""
        self._bytes += detail_size(detail.node_name, None, detail.message)
        self._details.append(detail)

    def _group(self, d: FailedNodeDetail, what: str) -> None:
        """List the node in the open group entry of its reason (GROUP_SIZE names an entry)."""
        current = self._groups.get(d.reason)
        if current is None or current[2] >= GROUP_SIZE:
            entry = FailedNodeDetail(
                node_name=d.node_name,
                reason=d.reason,
                message=f"{what} {d.node_name}",
                timestamp=d.timestamp.replace(microsecond=0),
            )
            self._details.append(entry)
            self._groups[d.reason] = (entry, d.node_name, 1)
            self._bytes += detail_size(d.node_name, None, entry.message)
            return
        entry, first, count = current
        entry.message += f" {d.node_name}"
        entry.node_name = f"{first} (+{count} more)"
        self._groups[d.reason] = (entry, first, count + 1)
        self._bytes += len(d.node_name) + 1

    def _compact(self, d: FailedNodeDetail) -> FailedNodeDetail:
        message, image = trim(d.message), d.image
        if self._bytes >= FULL_DETAIL_BYTES:
            key = (d.image, d.reason)
            if self._last_message.get(key) == message:
                message = ""
            else:
                self._last_message[key] = message
                message = trim(message, SHORT_MESSAGE_CHARS)
        self._bytes += detail_size(d.node_name, image, message)
        return d.model_copy(
            update={
                "message": message,
                "image": image,
                "timestamp": d.timestamp.replace(microsecond=0),
            }
        )
