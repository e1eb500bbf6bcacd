"""Where a batch's nodes come from: a fixed list (the sweep), or a source that feeds nodes
while the batch runs (follow mode's node watch, activities/follow.py).

The batch control loop (activities/batch.py) is the same for both: with a source it keeps
its pod watch open, creates a Job for each node the source adds (at most `in_flight`
unfinished), and is done once the source has ended and every node has an outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class NodeSource(Protocol):
    def restore(self) -> list[str]:
        """The nodes an earlier attempt had taken (from the heartbeat details), in order."""
        ...

    async def run(self, add: Callable[[str], None]) -> None:
        """Call `add` for each new node; return when no more will come."""
        ...

    def adopt(self, node: str) -> bool:
        """A node found with a Job of this unit that the heartbeat details missed (an attempt
        that died within a heartbeat of taking it): True when the source now has it."""
        ...

    def snapshot(self) -> Any:
        """What a retried attempt resumes from (a JSON value, heartbeated)."""
        ...
