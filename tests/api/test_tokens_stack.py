"""Issue 14 against a real Temporal: idempotency keys are scoped per token, a write token cancels
only its own tasks (an admin any), and IPS_MAX_RUNNING_TASKS answers 429 with Retry-After."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from tests.api.testlib import TASKS, ApiServer, api_settings, new_queue, serve_api
from tests.waiting import async_wait_until

pytestmark = pytest.mark.integration

TOKENS = "tok-a write, tok-b write, tok-r read, tok-admin admin"
BODY = {"images": ["nginx:latest"], "batchSize": 10}
HANG = {"images": ["registry.example.com/ips-test/hang:1"], "batchSize": 1}


def auth(token: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


@pytest.fixture(scope="module")
def token_api(dev_address: str, queue: str) -> Iterator[ApiServer]:
    with serve_api(api_settings(dev_address, queue, ips_api_tokens=TOKENS)) as server:
        yield server


@pytest.fixture
async def http(token_api: ApiServer, worker: Worker) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=token_api.url, timeout=30) as client:
        yield client


async def test_one_callers_key_never_returns_another_callers_task(
    http: httpx.AsyncClient,
) -> None:
    key = f"deploy-{uuid.uuid4()}"
    a = await http.post(TASKS, json=BODY, headers=auth("tok-a", key))
    assert a.status_code == 201, a.text
    # The same key from another token: its own new task, not A's.
    b = await http.post(TASKS, json=BODY, headers=auth("tok-b", key))
    assert b.status_code == 201, b.text
    assert b.json()["taskId"] != a.json()["taskId"]
    # Another body under A's key from B: no 409 naming A's task either.
    other = await http.post(TASKS, json={**BODY, "batchSize": 3}, headers=auth("tok-b", key))
    assert other.status_code == 409, other.text
    assert other.json()["taskId"] == b.json()["taskId"]  # B's own task, never A's
    # A's retry still finds A's task.
    again = await http.post(TASKS, json=BODY, headers=auth("tok-a", key))
    assert again.status_code == 200 and again.json()["taskId"] == a.json()["taskId"]


async def test_a_write_token_cancels_only_its_own_tasks(http: httpx.AsyncClient) -> None:
    created = await http.post(TASKS, json=HANG, headers=auth("tok-a"))
    assert created.status_code == 201, created.text
    task = f"{TASKS}/{created.json()['taskId']}"
    for token in ("tok-b", "tok-r"):
        r = await http.delete(task, headers=auth(token))
        assert r.status_code == 403, (token, r.text)
    # Everyone may read it.
    assert (await http.get(task, headers=auth("tok-r"))).status_code == 200
    r = await http.delete(task, headers=auth("tok-admin"))
    assert r.status_code in (200, 202), r.text
    mine = await http.post(TASKS, json=HANG, headers=auth("tok-b"))
    r = await http.delete(f"{TASKS}/{mine.json()['taskId']}", headers=auth("tok-b"))
    assert r.status_code in (200, 202), r.text


async def test_running_task_cap_answers_429_with_retry_after(
    dev_address: str, dev_client: Client
) -> None:
    """No worker polls this queue, so the tasks stay running: the cap is reached for sure."""
    queue = new_queue("ips-cap")
    settings = api_settings(dev_address, queue, ips_max_running_tasks=2)
    ids: list[str] = []
    try:
        with serve_api(settings) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                key = f"cap-{uuid.uuid4()}"
                first = await http.post(TASKS, json=BODY, headers={"Idempotency-Key": key})
                second = await http.post(TASKS, json=BODY)
                assert first.status_code == second.status_code == 201
                ids = [first.json()["taskId"], second.json()["taskId"]]

                async def listed() -> bool:  # visibility catches up
                    return bool((await http.get(TASKS)).json()["total"] >= 2)

                await async_wait_until(
                    listed, 20, interval=0.1, message="visibility never showed the tasks"
                )
                over = await http.post(TASKS, json=BODY)
                assert over.status_code == 429, over.text
                assert over.json()["error"] == "too many running tasks"
                assert "IPS_MAX_RUNNING_TASKS" in over.json()["details"]
                assert int(over.headers["retry-after"]) > 0
                # A retry of an accepted request is answered as before, never refused.
                retry = await http.post(TASKS, json=BODY, headers={"Idempotency-Key": key})
                assert retry.status_code == 200 and retry.json()["taskId"] == ids[0]
    finally:
        for task_id in ids:
            await dev_client.get_workflow_handle(task_id).terminate("test over")


async def test_a_write_token_changes_only_its_own_schedules(http: httpx.AsyncClient) -> None:
    """As with tasks: another write token gets a 403 on PATCH, trigger and DELETE of a schedule
    it did not create, a read token may only read, and an admin may do everything."""
    schedules = "/api/v1/schedules"
    body = {"task": BODY, "every": "1h", "paused": True}
    created = await http.post(schedules, json=body, headers=auth("tok-a"))
    assert created.status_code == 201, created.text
    schedule = f"{schedules}/{created.json()['scheduleId']}"
    try:
        for token in ("tok-b", "tok-r"):
            calls = [
                http.patch(schedule, json={"paused": False}, headers=auth(token)),
                http.post(f"{schedule}/trigger", headers=auth(token)),
                http.delete(schedule, headers=auth(token)),
            ]
            for r in await asyncio.gather(*calls):
                assert r.status_code == 403, (token, r.request.method, r.text)
        read = await http.get(schedule, headers=auth("tok-r"))
        assert read.status_code == 200 and read.json()["paused"] is True, read.text
        mine = await http.patch(schedule, json={"every": "2h"}, headers=auth("tok-a"))
        assert mine.status_code == 200, mine.text
    finally:
        gone = await http.delete(schedule, headers=auth("tok-admin"))
        assert gone.status_code in (200, 204), gone.text
    assert (await http.get(schedule, headers=auth("tok-r"))).status_code == 404
