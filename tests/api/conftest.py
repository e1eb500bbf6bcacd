"""API test fixtures (helpers live in api_testlib, importable by a unique name)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from tests.api.fake_engine import FakePrewarmWorkflow
from tests.api.testlib import ApiServer, api_settings, new_queue, serve_api


@pytest.fixture(scope="module")
def queue() -> str:
    return new_queue()


@pytest.fixture(scope="module")
async def worker(dev_client: Client, queue: str) -> AsyncIterator[Worker]:
    async with Worker(dev_client, task_queue=queue, workflows=[FakePrewarmWorkflow]) as w:
        yield w


@pytest.fixture(scope="module")
def api(dev_address: str, queue: str) -> Iterator[ApiServer]:
    with serve_api(api_settings(dev_address, queue)) as server:
        yield server


@pytest.fixture
async def http(api: ApiServer, worker: Worker) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        yield client
