"""What the history generators share (make_history, make_follow_history, make_launcher_history):
a local Temporal dev server (the installed `temporal` CLI: never a download), kubesim and an
in-process worker on the `history` task queue, and writing a workflow's runs as JSON files.

    async with history_rig(nodes=14, time_scale=50, seed=1, out=OUT) as rig:
        handle = await rig.start(task_id, spec, EngineState(units_per_run=2))
        await rig.save(handle, "batch-can")  # batch-can-run1.json, -run2.json, ...

Each generator keeps only its scenarios; `parse_args` gives every one the same `--out DIR`
(default tests/workflows/histories, the directory test_replay.py replays).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from common.engine import EngineState, PrewarmInput
from common.models import TaskSpec
from common.settings import Settings
from common.starting import start_prewarm_workflow
from common.temporal import ALL_SEARCH_ATTRIBUTE_KEYS
from kubesim.testing import SimHandle, start_sim
from worker.main import build_worker

OUT = Path(__file__).parent / "histories"
TASK_QUEUE = "history"


def temporal_exe() -> str:
    """The venv's `temporal` first, then PATH's (never let the SDK download a server)."""
    path = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which(
        "temporal"
    )
    if path is None:
        raise SystemExit("`temporal` is not installed (make install)")
    return path


def stamp() -> str:
    """The time part of a task ID (task-<stamp>-<hex8>)."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def parse_args(
    doc: str, argv: Sequence[str] | None = None, **positional: str
) -> argparse.Namespace:
    """The generators' command line: their optional positionals (name=help), and `--out DIR`."""
    parser = argparse.ArgumentParser(
        description=doc.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name, help_text in positional.items():
        parser.add_argument(name, nargs="?", default=None, help=help_text)
    parser.add_argument(
        "--out",
        type=Path,
        default=OUT,
        metavar="DIR",
        help="where to write the histories (default: tests/workflows/histories)",
    )
    return parser.parse_args(argv)


async def runs(client: Client, handle: WorkflowHandle[Any, Any]) -> list[WorkflowHistory]:
    """The history of every run of a workflow, following its continue-as-new chain."""
    found: list[WorkflowHistory] = []
    run_id: str | None = handle.first_execution_run_id
    while run_id is not None:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        found.append(history)
        attrs = history.events[-1].workflow_execution_continued_as_new_event_attributes
        run_id = attrs.new_execution_run_id or None
    return found


@dataclass
class Rig:
    """A running set-up: the dev server's client, kubesim, the worker's task queue."""

    client: Client
    sim: SimHandle
    out: Path
    task_queue: str = TASK_QUEUE

    async def start(
        self, task_id: str, spec: TaskSpec, state: EngineState | None = None
    ) -> WorkflowHandle[Any, Any]:
        """Start a prewarm workflow on the rig's queue, created now."""
        inp = PrewarmInput(
            task_id=task_id, spec=spec, created_at=datetime.now(UTC), state=state or EngineState()
        )
        return await start_prewarm_workflow(self.client, self.task_queue, inp)

    def write(self, file_name: str, history: WorkflowHistory) -> Path:
        path = self.out / file_name
        path.write_text(history.to_json())
        return path

    async def save(self, handle: WorkflowHandle[Any, Any], name: str) -> list[int]:
        """Write every run of `handle` to <out>/<name>-runN.json; returns the events per run."""
        histories = await runs(self.client, handle)
        for k, history in enumerate(histories, start=1):
            self.write(f"{name}-run{k}.json", history)
        return [len(h.events) for h in histories]


@asynccontextmanager
async def history_rig(
    *, nodes: int, time_scale: float, out: Path = OUT, seed: int = 0, **settings: Any
) -> AsyncIterator[Rig]:
    """A dev server with our search attributes, kubesim (`nodes`, `time_scale`, `seed`) and a
    worker on `history` with `settings` (Settings fields) over the defaults below."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=temporal_exe(),
        search_attributes=ALL_SEARCH_ATTRIBUTE_KEYS,
    )
    try:
        with start_sim(nodes=nodes, time_scale=time_scale, seed=seed) as sim:
            config = Settings(
                kubeconfig=sim.kubeconfig_path,
                metrics_port=0,
                temporal_metrics_port=0,
                **settings,
            )
            async with await build_worker(env.client, config, task_queue=TASK_QUEUE):
                yield Rig(env.client, sim, out)
    finally:
        await env.shutdown()
