"""No worker, Temporal down, auth on: the API answers quickly and truthfully, never a 500."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.api.fake_engine import FakePrewarmWorkflow
from tests.api.testlib import (
    ALL_SEARCH_ATTRIBUTES,
    TASKS,
    api_settings,
    new_queue,
    outlive_view_cache,
    serve_api,
    wait_status,
)
from tests.processes import free_port
from tests.waiting import async_wait_until

pytestmark = pytest.mark.integration

BODY = {"images": ["example.com/hang:1"], "batchSize": 2}


@pytest.fixture
async def lone(dev_address: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """An API on a fresh queue with no worker; tests start and stop workers themselves."""
    queue = new_queue("ips-api-lone")
    with serve_api(api_settings(dev_address, queue)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            yield http, queue


async def test_pending_task_with_no_worker_answers_from_visibility_quickly(
    lone: tuple[httpx.AsyncClient, str],
) -> None:
    http, _ = lone
    r = await http.post(
        TASKS, json={**BODY, "nodeSelector": {"pool": "gpu"}, "strategy": "rolling"}
    )
    assert r.status_code == 201
    task_id = r.json()["taskId"]
    start = time.monotonic()
    got = await http.get(f"{TASKS}/{task_id}")
    elapsed = time.monotonic() - start
    assert got.status_code == 200 and elapsed < 3.0, elapsed
    body = got.json()
    assert body["status"] == "pending" and body["taskId"] == task_id
    assert body["nodeSelector"] == {"pool": "gpu"} and body["strategy"] == "rolling"
    assert body["createdAt"] == r.json()["createdAt"]
    assert "no worker" in body["message"]


async def test_running_task_after_the_worker_stops_answers_under_3s_with_last_counters(
    lone: tuple[httpx.AsyncClient, str], dev_client: Client
) -> None:
    http, queue = lone
    async with Worker(dev_client, task_queue=queue, workflows=[FakePrewarmWorkflow]):
        task_id = (await http.post(TASKS, json=BODY)).json()["taskId"]
        live = await wait_status(http, task_id, {"running"})
        assert "message" not in live
    await outlive_view_cache()  # else the live view read a moment ago may be reused
    start = time.monotonic()
    got = await http.get(f"{TASKS}/{task_id}")
    assert time.monotonic() - start < 3.0
    body = got.json()
    assert body["status"] == "running"
    assert body["progress"]["completedNodes"] == 1 and body["progress"]["totalNodes"] == 4
    assert body["progress"]["totalBatches"] == 2 and body["progress"]["currentBatch"] == 1
    assert "no worker" in body["message"]
    # A cancel with no worker to confirm it: 202, and the task is still cancellable later.
    start = time.monotonic()
    r = await http.delete(f"{TASKS}/{task_id}")
    assert r.status_code == 202 and r.json()["status"] == "cancelling"
    assert 4.5 < time.monotonic() - start < 10
    async with Worker(dev_client, task_queue=queue, workflows=[FakePrewarmWorkflow]):
        await wait_status(http, task_id, {"cancelled"})


async def test_finished_task_reads_from_its_result_with_no_worker(
    lone: tuple[httpx.AsyncClient, str], dev_client: Client
) -> None:
    http, queue = lone
    async with Worker(dev_client, task_queue=queue, workflows=[FakePrewarmWorkflow]):
        task_id = (await http.post(TASKS, json={"images": ["nginx:1"], "batchSize": 1})).json()[
            "taskId"
        ]
        await wait_status(http, task_id, {"completed"})
    start = time.monotonic()
    body = (await http.get(f"{TASKS}/{task_id}")).json()
    assert time.monotonic() - start < 2.0  # one describe + one history read
    assert body["status"] == "completed" and body["progress"]["completedNodes"] == 4
    assert body["finishedAt"] and "message" not in body


async def test_auth_on_guards_api_routes_only_and_never_logs_tokens(
    dev_address: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = api_settings(dev_address, new_queue(), ips_api_tokens="s3cret-one, s3cret-two")
    with serve_api(settings) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
                assert (await http.get(path)).status_code == 200, path
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
                for method, path in (("GET", TASKS), ("POST", TASKS), ("DELETE", f"{TASKS}/x")):
                    r = await http.request(method, path, headers=headers, json={})
                    assert r.status_code == 401, (method, path, headers, r.text)
                    assert r.json()["error"] == "unauthorized"
                    assert r.headers["www-authenticate"].startswith("Bearer")
            for token in ("s3cret-one", "s3cret-two"):
                ok = await http.get(TASKS, headers={"Authorization": f"Bearer {token}"})
                assert ok.status_code == 200, ok.text
            r = await http.post(
                TASKS,
                json={"images": ["nginx:1"], "batchSize": 1},
                headers={"Authorization": "Bearer s3cret-two"},
            )
            assert r.status_code == 201
    assert "s3cret" not in caplog.text


async def test_tokens_file(dev_address: str, tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "tokens"
    path.write_text("# ops team\nfile-token\n\n")
    with serve_api(api_settings(dev_address, new_queue(), ips_api_tokens_file=path)) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get(TASKS)).status_code == 401
            r = await http.get(TASKS, headers={"Authorization": "Bearer file-token"})
            assert r.status_code == 200


async def test_cors_when_enabled(dev_address: str) -> None:
    settings = api_settings(dev_address, new_queue(), cors_origins=["https://ui.example"])
    with serve_api(settings) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            r = await http.options(
                TASKS,
                headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"},
            )
            assert r.headers["access-control-allow-origin"] == "https://ui.example"
            r = await http.options(
                TASKS,
                headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
            )
            assert "access-control-allow-origin" not in r.headers


async def test_temporal_down_at_start_then_up(tmp_path: object) -> None:
    """Start with nothing on the Temporal port: live 200, ready 503, tasks 503 (bad input still
    400); then a server comes up on that port and the same process serves tasks."""
    port = free_port()
    settings = api_settings(f"127.0.0.1:{port}", new_queue())
    with serve_api(settings) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await http.get("/healthz")).status_code == 200
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["error"] == "not ready"
            assert f"127.0.0.1:{port}" not in ready.text  # issue 14: reasons go to the logs
            start = time.monotonic()
            for method, path, body in (
                ("POST", TASKS, {"images": ["nginx:1"], "batchSize": 1}),
                ("GET", TASKS, None),
                ("GET", f"{TASKS}/task-20260116-151234-a1b2c3d4", None),
                ("DELETE", f"{TASKS}/task-20260116-151234-a1b2c3d4", None),
            ):
                r = await http.request(method, path, json=body)
                assert r.status_code == 503, (method, path, r.text)
                assert r.json()["error"] == "temporal unavailable" and r.headers["retry-after"]
            assert time.monotonic() - start < 12
            bad = await http.post(TASKS, json={"images": [], "batchSize": 1})
            assert bad.status_code == 400

            env = await WorkflowEnvironment.start_local(
                data_converter=pydantic_data_converter,
                dev_server_existing_path=shutil.which("temporal"),
                search_attributes=ALL_SEARCH_ATTRIBUTES,
                dev_server_log_level="error",
                port=port,
            )
            try:
                async with Worker(
                    env.client, task_queue=settings.temporal_task_queue,
                    workflows=[FakePrewarmWorkflow],
                ):  # fmt: skip

                    async def ready() -> bool:
                        return (await http.get("/readyz")).status_code == 200

                    await async_wait_until(ready, 10, interval=0.3, message="never became ready")
                    r = await http.post(TASKS, json={"images": ["nginx:1"], "batchSize": 1})
                    assert r.status_code == 201, r.text
                    await wait_status(http, r.json()["taskId"], {"completed"})
            finally:
                await env.shutdown()
