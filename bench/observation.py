"""What a benchmark observes besides the task itself: kubesim's request counts, the workflow
history's size, and a process's peak resident memory."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from temporalio.client import Client

from bench.engine_bench import run_history
from tests.stack import Stack


def sim_url(stack: Stack) -> str:
    """kubesim's base URL, from the kubeconfig it wrote."""
    config = yaml.safe_load(stack.kubeconfig.read_text())
    return str(config["clusters"][0]["cluster"]["server"])


def sim_stats(stack: Stack) -> dict[str, Any]:
    response = httpx.get(f"{sim_url(stack)}/kubesim/stats", timeout=30)
    response.raise_for_status()
    return dict(response.json())


async def history_stats(client: Client, task_id: str) -> dict[str, Any]:
    """Events of every run of the task's workflow, following the continue-as-new chain
    (bench.engine_bench.run_history)."""
    desc = await client.get_workflow_handle(task_id).describe()
    first = desc.raw_description.workflow_execution_info.first_run_id or desc.run_id
    handle = client.get_workflow_handle(task_id, first_execution_run_id=first)
    lengths = await run_history(client, handle)
    return {"runs": len(lengths), "events": sum(lengths), "maxEventsPerRun": max(lengths)}


@dataclass
class RssSampler:
    """Peak resident memory of one process, sampled every `interval` s, and its VmHWM."""

    pid: int
    interval: float = 0.2
    peak_bytes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        proc = psutil.Process(self.pid)

        def loop() -> None:
            while not self._stop.is_set():
                with contextlib.suppress(psutil.Error):
                    self.peak_bytes = max(self.peak_bytes, proc.memory_info().rss)
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
