"""Regenerate the committed history of a follow-mode task that test_replay.py replays.

    .venv/bin/python -m tests.workflows.make_follow_history [--out DIR]

A real task with `follow` (local Temporal dev server, in-process worker, kubesim with
autoscaler joins: tests/workflows/historylib.py): a first sweep, nodes joining during it and
while following, continue-as-new every 3 units (the sweep's batches, then the follow units), the
end of its duration. Writes follow-runN.json to tests/workflows/histories/ (or DIR) and prints
the events per joined node. Re-run it and commit the files whenever the follow phase's commands
change.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from common.engine import EngineState
from common.models import FollowSpec, TaskSpec

from .historylib import OUT, history_rig, parse_args, stamp


async def main(out: Path = OUT) -> None:
    async with history_rig(
        nodes=12,
        time_scale=20,
        seed=1,
        out=out,
        unschedulable_grace_seconds=2,
        engine_time_scale=20,
    ) as rig:
        spec = TaskSpec(
            images=["registry.example.com/ips-test/small:1"],
            batch_size=2,
            node_selector={"pool": "compute"},
            follow=FollowSpec(duration_seconds=25),
        )
        tid = f"task-{stamp()}-0000f011"
        h = await rig.start(tid, spec, EngineState(units_per_run=3))
        rig.sim.join_nodes(1, "compute", ready_after=20, taints_removed_after=20)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        for _ in range(3):
            rig.sim.join_nodes(2, "compute", ready_after=20, taints_removed_after=20)
            await asyncio.sleep(4)
        view = await h.result()
        print(tid, view.status, view.progress, view.following)
        counts = await rig.save(h, "follow")
        added = view.following.nodes_added if view.following else 0
        print(f"events per run {counts}; {sum(counts)} events, {added} nodes joined")


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args(__doc__ or "").out)))
