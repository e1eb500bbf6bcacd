"""Idempotency-Key: a retry never starts a second workflow, even when retries race."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from temporalio.client import Client

from common.temporal import WORKFLOW_NAME
from tests.api.testlib import TASKS

pytestmark = pytest.mark.integration

BODY = {"images": ["nginx:latest", "redis:7"], "batchSize": 10}


async def workflows_with_key(client: Client, key: str) -> int:
    q = f"WorkflowType = '{WORKFLOW_NAME}' AND IpsIdempotencyKey = '{key}'"
    return (await client.count_workflows(q)).count


async def test_retry_with_same_key_and_body_returns_the_same_task(
    http: httpx.AsyncClient, dev_client: Client
) -> None:
    key = f"deploy-{uuid.uuid4()}"
    first = await http.post(TASKS, json=BODY, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    task_id = first.json()["taskId"]
    # Same meaning, different bytes: key order, duplicate image, explicit default.
    same = {"batchSize": 10, "images": ["nginx:latest", "redis:7", "redis:7"], "strategy": "batch"}
    for _ in range(2):
        again = await http.post(TASKS, json=same, headers={"Idempotency-Key": key})
        assert again.status_code == 200, again.text
        assert again.json()["taskId"] == task_id
        assert again.json()["createdAt"] == first.json()["createdAt"]
        assert again.headers["location"] == f"{TASKS}/{task_id}"
    assert await workflows_with_key(dev_client, key) == 1


async def test_same_key_with_another_body_is_409(
    http: httpx.AsyncClient, dev_client: Client
) -> None:
    key = f"deploy-{uuid.uuid4()}"
    first = await http.post(TASKS, json=BODY, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    other = await http.post(TASKS, json={**BODY, "batchSize": 5}, headers={"Idempotency-Key": key})
    assert other.status_code == 409, other.text
    body = other.json()
    assert body["error"] == "conflict" and "Idempotency-Key" in body["details"]
    assert body["taskId"] == first.json()["taskId"]
    assert await workflows_with_key(dev_client, key) == 1


async def test_concurrent_retries_start_exactly_one_workflow(
    http: httpx.AsyncClient, dev_client: Client
) -> None:
    key = f"race-{uuid.uuid4()}"
    results = await asyncio.gather(
        *(http.post(TASKS, json=BODY, headers={"Idempotency-Key": key}) for _ in range(8))
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200] * 7 + [201], [r.text for r in results]
    assert len({r.json()["taskId"] for r in results}) == 1
    assert await workflows_with_key(dev_client, key) == 1


async def test_without_a_key_each_post_is_a_new_task(http: httpx.AsyncClient) -> None:
    a = await http.post(TASKS, json=BODY)
    b = await http.post(TASKS, json=BODY)
    assert a.status_code == b.status_code == 201
    assert a.json()["taskId"] != b.json()["taskId"]
