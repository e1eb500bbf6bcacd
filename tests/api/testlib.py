"""API test helpers: the API served by uvicorn on a free port, in its own thread and loop.

The API thread has its own event loop and Temporal client, like a real deployment; the test
loop stays free to run in-process workers (the fake engine, or the real one when it exists).
Each module uses its own task queue, and the API lists only its queue's tasks, so other areas'
workflows on the shared dev server never show up here.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from api.main import create_app
from common import temporal as t
from common.settings import LogFormat, Settings
from tests.waiting import async_wait_until, wait_until

TASKS = "/api/v1/tasks"
ALL_SEARCH_ATTRIBUTES = t.ALL_SEARCH_ATTRIBUTE_KEYS


def api_settings(address: str, queue: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "temporal_address": address,
        "temporal_task_queue": queue,
        "ips_api_tokens": None,
        "ips_api_tokens_file": None,
        "cors_origins": [],
        "log_format": LogFormat.CONSOLE,
        # Tests with tokens set them; the rest run the API open, as `ips dev` does.
        "ips_auth": None if {"ips_api_tokens", "ips_api_tokens_file"} & set(overrides) else "none",
        # Modules share a queue and leave tasks running; the cap has its own test.
        "ips_max_running_tasks": 0,
    }
    values.update(overrides)
    return Settings(**values)


class ApiServer:
    """uvicorn serving `create_app(settings)` on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings), log_config=None, access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])),
            name=f"api-{self.port}",
            daemon=True,
        )

    def start(self, timeout: float = 20.0) -> None:
        self.thread.start()

        def started() -> bool:
            if not self.thread.is_alive():
                raise RuntimeError("the API did not start")
            return bool(self.server.started)

        wait_until(started, timeout, interval=0.02, message="the API did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


@contextmanager
def serve_api(settings: Settings) -> Iterator[ApiServer]:
    server = ApiServer(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def new_queue(prefix: str = "ips-api") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# What the test APIs reuse a running task's view for (api_settings keeps the default).
VIEW_CACHE_SECONDS: float = Settings.model_fields["task_view_cache_seconds"].default


async def outlive_view_cache(seconds: float = VIEW_CACHE_SECONDS) -> None:
    """A change made outside the API (in Temporal, or a worker stopping) shows once the running
    views it read before have expired: TASK_VIEW_CACHE_SECONDS, docs/api.md "Shared reads"."""
    await asyncio.sleep(seconds)


async def wait_status(
    http: httpx.AsyncClient, task_id: str, statuses: set[str], within: float = 20.0
) -> dict[str, Any]:
    body: dict[str, Any] = {}

    async def reached() -> dict[str, Any] | None:
        r = await http.get(f"{TASKS}/{task_id}")
        assert r.status_code == 200, r.text
        body.clear()
        body.update(r.json())
        return body if body["status"] in statuses else None

    return await async_wait_until(
        reached,
        within,
        interval=0.1,
        message=lambda: f"{task_id} never reached {statuses}; last: {body}",
    )
