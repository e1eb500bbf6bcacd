"""What a benchmark observes besides the task itself: kubesim's request counts, the workflow
history's size (and what a follow-mode task's carries), and a process's peak resident memory."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from bench.engine_bench import run_history
from common.engine import ACTIVITY_FOLLOW_NODES
from tests.stack import Stack


def sim_url(stack: Stack) -> str:
    """kubesim's base URL, from the kubeconfig it wrote."""
    config = yaml.safe_load(stack.kubeconfig.read_text())
    return str(config["clusters"][0]["cluster"]["server"])


def sim_stats(stack: Stack) -> dict[str, Any]:
    response = httpx.get(f"{sim_url(stack)}/kubesim/stats", timeout=30)
    response.raise_for_status()
    return dict(response.json())


async def _first_run(client: Client, task_id: str) -> WorkflowHandle[Any, Any]:
    """The task's workflow from its first run (the head of its continue-as-new chain)."""
    desc = await client.get_workflow_handle(task_id).describe()
    first = desc.raw_description.workflow_execution_info.first_run_id or desc.run_id
    return client.get_workflow_handle(task_id, first_execution_run_id=first)


async def history_stats(client: Client, task_id: str) -> dict[str, Any]:
    """Events of every run of the task's workflow, following the continue-as-new chain
    (bench.engine_bench.run_history)."""
    lengths = await run_history(client, await _first_run(client, task_id))
    return {"runs": len(lengths), "events": sum(lengths), "maxEventsPerRun": max(lengths)}


async def follow_payloads(client: Client, task_id: str) -> dict[str, int]:
    """What a follow-mode task's history carries, over every run: its follow units (each a
    `follow_nodes` activity), the largest unit input (it holds the nodes the task has,
    `covered`), and the largest continue-as-new input (the state handed to the next run:
    resourceVersion, counters, `covered`), in bytes as recorded in the history."""
    handle = await _first_run(client, task_id)
    units, unit_bytes, carried_bytes = 0, 0, 0
    run_id: str | None = handle.first_execution_run_id
    while run_id is not None:
        h = client.get_workflow_handle(task_id, run_id=run_id)
        events = [e async for e in h.fetch_history_events()]
        for e in events:
            if e.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                continue
            attrs = e.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == ACTIVITY_FOLLOW_NODES:
                units += 1
                unit_bytes = max(unit_bytes, attrs.input.ByteSize())
        carried = events[-1].workflow_execution_continued_as_new_event_attributes
        run_id = carried.new_execution_run_id or None
        if run_id is not None:
            carried_bytes = max(carried_bytes, carried.input.ByteSize())
    return {
        "followUnits": units,
        "maxFollowUnitInputBytes": unit_bytes,
        "maxContinueAsNewInputBytes": carried_bytes,
    }


@dataclass
class RssSampler:
    """Resident memory of one process, sampled every `interval` s: the peak (and its VmHWM),
    and the series `points`, [(seconds since the start, MiB)]."""

    pid: int
    interval: float = 0.2
    peak_bytes: int = 0
    points: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        proc, t0 = psutil.Process(self.pid), time.monotonic()

        def loop() -> None:
            while not self._stop.is_set():
                with contextlib.suppress(psutil.Error):
                    rss = proc.memory_info().rss
                    self.peak_bytes = max(self.peak_bytes, rss)
                    self.points.append((round(time.monotonic() - t0, 1), round(rss / 1024**2, 1)))
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, name="rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.peak_bytes = max(self.peak_bytes, vm_hwm(self.pid))

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / 1024**2


def vm_hwm(pid: int) -> int:
    """The kernel's own peak RSS of a live process (bytes); 0 when unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
