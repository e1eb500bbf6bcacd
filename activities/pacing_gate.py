"""The batch activity's in-flight gate, driven by the AIMD window (common/pacing.py; issue 16).

Job creation takes a slot per node and gives it back when the node has its outcome. With no
window (inputs from before issue 16, or a task without pacing) the gate is a fixed limit of
`in_flight`. With a window, the limit is `min(in_flight, window)`:

- the first `RateLimited` error seen on a node's pod (the kubelet's `429 Too Many Requests`,
  while it still retries) halves the window, once per burst (the window's own cooldown): the
  engine reacts while the pulls are failing, not at their deadline;
- a successful pull grows it back: by one per window's worth of successes while 429s keep
  coming, by one per success once a window's worth has passed with none (common/pacing.py);
- any other outcome only ages the burst.

Shrinking never stops a running pull: new Jobs wait until fewer than `window` are in flight.
Every change of the window is logged with the task, and reported to the workflow with the
outcomes (activities/outcomes.py), which shows it in the progress.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from common.models import FailureReason
from common.pacing import AimdWindow

log = logging.getLogger(__name__)


class PacingGate:
    """At most `limit` nodes hold a slot; `limit` follows the AIMD window when there is one."""

    def __init__(
        self, in_flight: int, window: AimdWindow | None, extra: dict[str, Any] | None = None
    ) -> None:
        self.in_flight = in_flight
        self.window = window.model_copy(deep=True) if window is not None else None
        self.extra = extra or {}
        self.holding: set[str] = set()
        self.limited: set[str] = set()  # nodes whose 429 was counted
        self.changed = asyncio.Event()
        self.history: list[int] = []  # the window after each change (logged, and for tests)

    @property
    def limit(self) -> int:
        if self.window is None:
            return self.in_flight
        return max(1, min(self.in_flight, self.window.window))

    async def acquire(self, node: str) -> None:
        while len(self.holding) >= self.limit:
            self.changed.clear()
            await self.changed.wait()
        self.holding.add(node)

    def release(self, node: str) -> None:
        if node in self.holding:
            self.holding.discard(node)
            self.changed.set()

    def rate_limited(self, node: str) -> None:
        """A node's pod reports a 429 (the kubelet retries it): once per node."""
        if self.window is None or node in self.limited:
            return
        self.limited.add(node)
        self._moved(self.window.window, self.window.on_rate_limited(), "429 on node " + node)

    def outcome(self, node: str, ok: bool, reason: FailureReason | None) -> None:
        if self.window is None:
            return
        before = self.window.window
        if ok:
            after = self.window.on_success()
        elif reason == FailureReason.RATE_LIMITED and node not in self.limited:
            self.limited.add(node)
            after = self.window.on_rate_limited()
        else:
            after = self.window.on_other_outcome()
        self.limited.discard(node)
        self._moved(before, after, f"node {node} finished")

    def _moved(self, before: int, after: int, why: str) -> None:
        if before == after:
            return
        self.history.append(after)
        self.changed.set()
        log.info("in-flight window %d -> %d (%s)", before, after, why, extra=self.extra)
