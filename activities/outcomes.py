"""The batch activity's outcome bookkeeping: which nodes are done, signalled and heartbeated.

A node's outcome is signalled to the workflow (`node_outcomes`, at most once a second), then
recorded as reported in the heartbeat details (the nodes' indexes), so a retried attempt never
pulls it again (`restore`). Outcomes not signalled when the activity ends travel in its result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from temporalio import activity

from activities.classify import Verdict
from common.engine import NodeOutcome, NodeOutcomes
from common.models import FailedNodeDetail, FailureReason
from common.observability import NODE_FAILURES, NODES_PROCESSED
from common.pacing import AimdWindow

log = logging.getLogger(__name__)

# The worker throttles heartbeats to 1 s anyway (worker/main.py, HEARTBEAT_THROTTLE_SECONDS).
HEARTBEAT_INTERVAL = 1.0
SIGNAL_INTERVAL = 1.0  # outcomes reach the workflow at most this often (and within ~1 s)

Signaller = Callable[[NodeOutcomes], Awaitable[None]]


def outcome_of(node: str, verdict: Verdict, extra: dict[str, Any]) -> NodeOutcome:
    """The node's outcome from its final verdict, counted in the metrics."""
    if verdict.ok:
        NODES_PROCESSED.labels("completed").inc()
        return NodeOutcome(node_name=node, ok=True)
    reason = verdict.reason or FailureReason.CONTAINER_FAILED
    NODES_PROCESSED.labels("failed").inc()
    NODE_FAILURES.labels(reason.value).inc()
    log.info("node %s failed: %s %s", node, reason.value, verdict.message, extra=extra)
    return NodeOutcome(
        node_name=node,
        ok=False,
        failure=FailedNodeDetail(
            node_name=node,
            image=verdict.image,
            reason=reason,
            message=verdict.message,
            timestamp=datetime.now(UTC),
        ),
    )


class OutcomeBook:
    """The outcomes of one attempt of one batch: done, signalled (reported) or not yet.

    `pacing()` gives the AIMD window (activities/pacing_gate.py), if any: it travels with the
    outcomes, and alone when it changed with no outcome, and in the heartbeat details, so a
    retried attempt resumes it."""

    def __init__(
        self,
        batch_number: int,
        nodes: Sequence[str],
        signal: Signaller,
        extra: dict[str, Any],
        *,
        pacing: Callable[[], AimdWindow | None] = lambda: None,
        resume: Callable[[], Any] | None = None,
    ) -> None:
        self.batch_number, self.nodes, self.signal, self.extra = (
            batch_number,
            list(nodes),
            signal,
            extra,
        )
        self.index = {n: i for i, n in enumerate(self.nodes)}
        self.done: set[str] = set()  # nodes with an outcome (reported or not)
        self.reported: set[str] = set()
        self.unreported: dict[str, NodeOutcome] = {}
        self.unsent: list[NodeOutcome] = []
        self.all_done = asyncio.Event()
        self.heartbeats = 0
        self.max_heartbeat_gap = 0.0
        self.pacing = pacing
        self.sent_window: int | None = None
        # Follow mode (activities/follow.py): nodes arrive while the unit runs (`add`); the
        # unit is done only once closed; `resume()` is a third heartbeat detail.
        self.open = False
        self.joined: list[str] = []
        self.resume = resume

    def restore(self) -> AimdWindow | None:
        """Nodes reported by an earlier attempt (heartbeat details) are done: never re-pulled.
        Returns the AIMD window that attempt last heartbeated, if any."""
        details = activity.info().heartbeat_details
        if not details:
            return None
        indexes = details[0] if isinstance(details[0], list) else []
        for i in indexes:
            if isinstance(i, int) and 0 <= i < len(self.nodes):
                self.reported.add(self.nodes[i])
                self.done.add(self.nodes[i])
        if len(details) > 1 and isinstance(details[1], dict):
            try:
                return AimdWindow.model_validate(details[1])
            except ValidationError:
                return None
        return None

    def add(self, node: str) -> bool:
        """A node that joined the open unit (False when it already has it)."""
        if node in self.index:
            return False
        self.index[node] = len(self.nodes)
        self.nodes.append(node)
        self.joined.append(node)
        return True

    def close(self) -> None:
        self.open = False
        self.maybe_done()

    def pending(self) -> list[str]:
        return [n for n in self.nodes if n not in self.done]

    def record(self, outcome: NodeOutcome) -> None:
        self.done.add(outcome.node_name)
        self.unreported[outcome.node_name] = outcome
        self.unsent.append(outcome)

    def maybe_done(self) -> None:
        if not self.open and len(self.done) >= len(self.nodes):
            self.all_done.set()

    # Heartbeats and reports (never wait on Kubernetes) ---------------------------------------

    def heartbeat(self) -> None:
        indexes = sorted(self.index[n] for n in self.reported)
        window = self.pacing()
        dumped = window.model_dump(mode="json", by_alias=True) if window is not None else None
        if self.resume is not None:
            activity.heartbeat(indexes, dumped, self.resume())
        elif dumped is None:
            activity.heartbeat(indexes)
        else:
            activity.heartbeat(indexes, dumped)

    async def heartbeat_loop(self) -> None:
        last = time.monotonic()
        while True:
            self.heartbeat()
            self.heartbeats += 1
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            now = time.monotonic()
            self.max_heartbeat_gap = max(self.max_heartbeat_gap, now - last)
            last = now

    async def report_loop(self) -> None:
        while True:
            await asyncio.sleep(SIGNAL_INTERVAL)
            await self.flush()

    async def flush(self) -> None:
        """Signal new outcomes to the workflow, then record them as reported (heartbeat)."""
        window = self.pacing()
        moved = window is not None and window.window != self.sent_window
        if not self.unsent and not self.joined and not moved:
            return
        sending, self.unsent = self.unsent, []
        joined, self.joined = self.joined, []
        try:
            await self.signal(
                NodeOutcomes(
                    unit=self.batch_number,
                    outcomes=sending,
                    pacing=window.model_copy() if window is not None else None,
                    joined=joined,
                )
            )
        except Exception as err:  # the activity result carries them anyway
            log.warning("could not signal outcomes: %s", err, extra=self.extra)
            self.unsent = sending + self.unsent
            self.joined = joined + self.joined
            return
        self.sent_window = window.window if window is not None else None
        for outcome in sending:
            self.reported.add(outcome.node_name)
            self.unreported.pop(outcome.node_name, None)
        self.heartbeat()
