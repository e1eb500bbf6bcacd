"""Regenerate the committed histories that test_replay.py replays.

    .venv/bin/python -m tests.workflows.make_history [TAG] [--out DIR]

TAG (say `v2`) names the files batch-can-TAG-runN.json and rolling-cancel-TAG-run1.json, so a
new generation is committed next to the old ones, which must keep replaying.

Runs real tasks (local Temporal dev server, in-process worker, kubesim: tests/workflows/
historylib.py) and writes one JSON file per workflow run to tests/workflows/histories/ (or
DIR). Re-run it, and commit the new files next to the old ones, whenever PrewarmWorkflow changes
in a way that alters its commands (and gate the change with workflow.patched() so the old
histories still replay).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from common.engine import EngineState
from common.models import TaskSpec

from .historylib import OUT, Rig, history_rig, parse_args, stamp


async def main(tag: str = "", out: Path = OUT) -> None:
    suffix = f"-{tag}" if tag else ""
    async with history_rig(
        nodes=14, time_scale=50, seed=1, out=out, unschedulable_grace_seconds=2
    ) as rig:
        when = stamp()
        # 1. Batches with continue-as-new every 2 batches, skipped/warm/failed nodes.
        spec = TaskSpec(
            images=["nginx:latest", "registry.example.com/ips-test/not-found:1"],
            batch_size=3,
            node_selector={"pool": "compute"},
        )
        tid = f"task-{when}-0000aaaa"
        h = await rig.start(tid, spec, EngineState(units_per_run=2))
        print(tid, (await h.result()).progress)
        await rig.save(h, f"batch-can{suffix}")
        # 2. Rolling, cancelled mid-window.
        spec = TaskSpec(
            images=["registry.example.com/ips-test/large:1"],
            batch_size=2,
            strategy="rolling",
        )
        tid = f"task-{when}-0000bbbb"
        h = await rig.start(tid, spec)
        deadline = time.monotonic() + 30
        while not rig.sim.objects("jobs") and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)
        await h.cancel()
        print(tid, (await h.result()).status)
        await rig.save(h, f"rolling-cancel{suffix}")
        if tag:
            await _registry_runs(rig, suffix)


async def _registry_runs(rig: Rig, suffix: str) -> None:
    """Issue 16: against a real registry (tests/activities/registry/regserver.py), a task with
    pinned digests and platform skips, and one stopped by the preflight (a typo)."""
    from tests.activities.registry.regserver import Registry, build_layout, missing_tools

    if missing_tools():
        print("no registry histories: missing", ", ".join(missing_tools()))
        return
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        multi = build_layout(d / "multi", "1", [("linux", "amd64"), ("linux", "arm64")], index=True)
        amd = build_layout(d / "amd", "1", [("linux", "amd64")], index=True)
        reg = Registry(d / "registry")
        reg.start()
        try:
            reg.push(multi.layout, "1", "team/multi")
            reg.push(amd.layout, "1", "team/amd64only")
            when = stamp()
            runs = [
                ("registry-pinned", "0000cccc", ["multi:1", "amd64only:1"]),
                ("preflight-typo", "0000dddd", ["multi:1", "mulit:1"]),
            ]
            for name, hex8, images in runs:
                spec = TaskSpec(images=[f"{reg.host}/team/{i}" for i in images], batch_size=4)
                h = await rig.start(f"task-{when}-{hex8}", spec)
                view = await h.result()
                print(h.id, view.status, view.message, view.progress.skipped_nodes)
                await rig.save(h, f"{name}{suffix}")
        finally:
            reg.stop()


if __name__ == "__main__":
    args = parse_args(__doc__ or "", TAG="names the new files' generation (say v2)")
    sys.exit(asyncio.run(main(args.TAG or "", args.out)))
