"""Shared reads on the real stack (a Temporal dev server, the fake engine): an API process that
keeps a running task's view for a minute still shows a DELETE at once (read-your-writes)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.api.testlib import TASKS, ApiServer, api_settings, serve_api, wait_status

pytestmark = pytest.mark.integration

TTL = 60.0  # far longer than the test: a stale view would show


@pytest.fixture(scope="module")
def api(dev_address: str, queue: str) -> Iterator[ApiServer]:
    with serve_api(api_settings(dev_address, queue, task_view_cache_seconds=TTL)) as server:
        yield server


async def test_a_delete_then_a_get_shows_the_cancel_not_the_kept_view(
    http: httpx.AsyncClient,
) -> None:
    r = await http.post(TASKS, json={"images": ["example.com/hang:1"], "batchSize": 2})
    assert r.status_code == 201, r.text
    task_id = r.json()["taskId"]
    await wait_status(http, task_id, {"running"})
    answers = await asyncio.gather(*(http.get(f"{TASKS}/{task_id}") for _ in range(10)))
    assert {a.json()["status"] for a in answers} == {"running"}
    kept = await http.get(f"{TASKS}/{task_id}")
    assert kept.headers["cache-status"] == "ips-api; hit" and int(kept.headers["age"]) < TTL
    assert (await http.delete(f"{TASKS}/{task_id}")).status_code == 200
    after = await http.get(f"{TASKS}/{task_id}")
    assert after.json()["status"] == "cancelled", after.text
    assert after.headers["cache-status"].startswith("ips-api; fwd=miss")
    # A closed task's view is not kept: each GET reads it again.
    again = await http.get(f"{TASKS}/{task_id}")
    assert again.headers["cache-status"].startswith("ips-api; fwd=miss")
