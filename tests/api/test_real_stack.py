"""The API on the real stack: Temporal dev server, the real engine's worker, kubesim.

Field by field against the seed README's example shapes, plus the checks that only the real
engine can make true (a finished task read with the worker stopped, a running one read with no
worker, cancel confirmed by the engine), and test-api.sh itself against this stack.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.worker import Worker

from common.settings import Settings
from kubesim.testing import SimHandle, start_sim
from tests.api.testlib import TASKS, ApiServer, api_settings, new_queue, serve_api, wait_status
from worker.main import build_worker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ID_RE = re.compile(r"^task-\d{8}-\d{6}-[0-9a-f]{8}$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
SLOW = "registry.example.com/ips-test/slow:1"
MISSING = "registry.example.com/ips-test/not-found:1"
# Ten nodes in two pools; the slow image takes ~6 minutes of simulated... real time / 10.
SCENARIO: dict[str, Any] = {
    "defaults": {"imageSize": "5MiB", "pullOverheadSeconds": 0.1, "containerRunSeconds": 0.1},
    "nodeGroups": [
        {"name": "compute", "count": 6, "labels": {"pool": "compute"}},
        {"name": "general", "count": 4, "labels": {"pool": "general"}},
    ],
    "images": [
        {"name": SLOW, "pullSeconds": 600},
        {"name": MISSING, "notFound": True},
        {"name": "busybox:latest", "size": "4MiB"},
    ],
}
TIME_SCALE = 10.0


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with start_sim(scenario=SCENARIO, time_scale=TIME_SCALE) as handle:
        yield handle


@pytest.fixture(scope="module")
def stack_settings(dev_address: str, sim: SimHandle) -> Settings:
    return api_settings(dev_address, new_queue("ips-api-real"), kubeconfig=sim.kubeconfig_path)


async def real_worker(client: Client, settings: Settings) -> Worker:
    return await build_worker(client, settings)


@pytest.fixture(scope="module")
async def engine(dev_client: Client, stack_settings: Settings) -> AsyncIterator[Worker]:
    async with await real_worker(dev_client, stack_settings) as worker:
        yield worker


@pytest.fixture(scope="module")
def real_api(stack_settings: Settings) -> Iterator[ApiServer]:
    with serve_api(stack_settings) as server:
        yield server


@pytest.fixture
async def rhttp(real_api: ApiServer, engine: Worker) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=real_api.url, timeout=30) as client:
        yield client


async def test_readme_flow_field_by_field(rhttp: httpx.AsyncClient) -> None:
    seed = {"images": ["nginx:latest", "redis:7"], "batchSize": 10}
    r = await rhttp.post(TASKS, json=seed)
    assert r.status_code == 201, r.text
    created = r.json()
    # The README's create example, plus nodeSelector.
    assert set(created) == {"taskId", "status", "images", "batchSize", "createdAt", "nodeSelector"}
    assert ID_RE.match(created["taskId"]) and TS_RE.match(created["createdAt"])
    assert created["status"] == "pending" and created["images"] == seed["images"]
    assert r.headers["location"] == f"{TASKS}/{created['taskId']}"

    body = await wait_status(rhttp, created["taskId"], {"completed"}, within=60)
    readme_get = {"taskId", "status", "images", "batchSize", "progress", "failedNodeDetails",
                  "createdAt", "startedAt"}  # fmt: skip
    assert readme_get <= set(body)
    assert {"skippedNodeDetails", "finishedAt"} <= set(body)
    progress = body["progress"]
    assert {"totalNodes", "completedNodes", "failedNodes", "currentBatch", "totalBatches",
            "percentage", "skippedNodes", "alreadyWarmNodes"} <= set(progress)  # fmt: skip
    # Every node is accounted for (whether it pulled is the engine's tests' business).
    assert progress["totalNodes"] == 10
    assert progress["completedNodes"] + progress["alreadyWarmNodes"] + progress["failedNodes"] == 10
    assert len(body["failedNodeDetails"]) == progress["failedNodes"]
    assert progress["percentage"] == 100.0
    assert body["createdAt"] == created["createdAt"] and TS_RE.match(body["startedAt"])

    listed = (await rhttp.get(TASKS, params={"status": "completed", "limit": 100})).json()
    item = next(t for t in listed["tasks"] if t["taskId"] == created["taskId"])
    assert set(item) == {"taskId", "status", "images", "progress", "createdAt"}
    assert item["progress"] == {"totalNodes": 10, "completedNodes": progress["completedNodes"],
                                "percentage": 100.0}  # fmt: skip

    r = await rhttp.delete(f"{TASKS}/{created['taskId']}")
    assert r.status_code == 409 and r.json()["status"] == "completed"


async def test_failed_nodes_are_detailed_and_a_strict_task_fails(rhttp: httpx.AsyncClient) -> None:
    r = await rhttp.post(
        TASKS,
        json={"images": [MISSING], "batchSize": 10, "nodeSelector": {"pool": "general"},
              "maxFailureRatio": 0.0},
    )  # fmt: skip
    task_id = r.json()["taskId"]
    body = await wait_status(rhttp, task_id, {"failed"}, within=90)
    assert body["message"]
    assert body["progress"]["failedNodes"] >= 1
    detail = body["failedNodeDetails"][0]
    assert {"nodeName", "reason", "message", "timestamp"} <= set(detail)
    assert detail["reason"] == "ImageNotFound" and TS_RE.match(detail["timestamp"])
    failed = (await rhttp.get(TASKS, params={"status": "failed"})).json()
    assert task_id in {t["taskId"] for t in failed["tasks"]}


async def test_cancel_is_confirmed_by_the_engine(rhttp: httpx.AsyncClient) -> None:
    task_id = (await rhttp.post(TASKS, json={"images": [SLOW], "batchSize": 5})).json()["taskId"]
    await wait_status(rhttp, task_id, {"running"}, within=30)
    r = await rhttp.delete(f"{TASKS}/{task_id}")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "taskId": task_id,
        "status": "cancelled",
        "message": "Task cancelled successfully",
    }
    body = (await rhttp.get(f"{TASKS}/{task_id}")).json()
    assert body["status"] == "cancelled" and body["finishedAt"]
    assert (await rhttp.delete(f"{TASKS}/{task_id}")).status_code == 409


async def test_idempotency_and_bad_input_on_the_real_stack(rhttp: httpx.AsyncClient) -> None:
    body = {"images": ["busybox:latest"], "batchSize": 4}
    first = await rhttp.post(TASKS, json=body, headers={"Idempotency-Key": "real-1"})
    again = await rhttp.post(TASKS, json=body, headers={"Idempotency-Key": "real-1"})
    other = await rhttp.post(
        TASKS, json={**body, "batchSize": 5}, headers={"Idempotency-Key": "real-1"}
    )
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert first.json()["taskId"] == again.json()["taskId"]
    for payload in ({"images": ["nginx"], "batchSize": 0}, {"images": "nginx", "batchSize": 1}):
        r = await rhttp.post(TASKS, json=payload)
        assert r.status_code == 400 and set(r.json()) == {"error", "details"}


async def test_worker_stopped_finished_task_reads_and_running_task_answers_fast(
    dev_client: Client, stack_settings: Settings, sim: SimHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Own queue and worker: stop the worker, then read a finished and a running task."""
    # Stop the worker in a second instead of letting the in-flight pull finish (20 s).
    monkeypatch.setattr("worker.main.GRACEFUL_SHUTDOWN", timedelta(seconds=1))
    settings = stack_settings.model_copy(update={"temporal_task_queue": new_queue("ips-api-nw")})
    with serve_api(settings) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            async with await real_worker(dev_client, settings):
                done = await http.post(TASKS, json={"images": ["busybox:latest"], "batchSize": 10})
                done_id = done.json()["taskId"]
                finished = await wait_status(http, done_id, {"completed"}, within=60)
                slow = await http.post(TASKS, json={"images": [SLOW], "batchSize": 2})
                slow_id = slow.json()["taskId"]
                running = await wait_status(http, slow_id, {"running"}, within=30)
                while running["progress"]["totalNodes"] == 0:  # nodes listed, batch 1 started
                    await asyncio.sleep(0.2)
                    running = (await http.get(f"{TASKS}/{slow_id}")).json()
            # No worker polls this queue any more.
            start = time.monotonic()
            r = await http.get(f"{TASKS}/{done_id}")
            assert time.monotonic() - start < 2.0
            assert r.json() == finished

            start = time.monotonic()
            r = await http.get(f"{TASKS}/{slow_id}")
            elapsed = time.monotonic() - start
            assert r.status_code == 200 and elapsed < 3.0, elapsed
            body = r.json()
            assert body["status"] == "running" and "no worker" in body["message"]
            assert body["progress"]["totalNodes"] == 10, (body["progress"], running["progress"])
            assert body["images"] == [SLOW] and body["batchSize"] == 2
            # Clean up: a worker comes back and honours the cancel.
            async with await real_worker(dev_client, settings):
                r = await http.delete(f"{TASKS}/{slow_id}")
                assert r.status_code in (200, 202)
                await wait_status(http, slow_id, {"cancelled"}, within=30)


async def test_list_paging_over_25_real_tasks(dev_client: Client, stack_settings: Settings) -> None:
    settings = stack_settings.model_copy(update={"temporal_task_queue": new_queue("ips-api-25")})
    with serve_api(settings) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            async with await real_worker(dev_client, settings):
                ids = []
                for i in range(25):
                    sel = {"pool": "compute" if i % 2 else "general"}
                    r = await http.post(
                        TASKS,
                        json={"images": ["busybox:latest"], "batchSize": 10, "nodeSelector": sel},
                    )
                    assert r.status_code == 201
                    ids.append(r.json()["taskId"])
                for task_id in ids:
                    await wait_status(http, task_id, {"completed"}, within=120)
            seen: list[str] = []
            for offset in range(0, 30, 7):
                page = (await http.get(TASKS, params={"limit": 7, "offset": offset})).json()
                assert page["total"] == 25 and page["offset"] == offset and page["limit"] == 7
                seen += [t["taskId"] for t in page["tasks"]]
            assert seen == ids[::-1]
            done = (await http.get(TASKS, params={"status": "completed", "limit": 100})).json()
            assert done["total"] == 25
            assert (await http.get(TASKS, params={"status": "running"})).json()["total"] == 0


async def run_test_api_script(url: str, token: str | None = None, *, ok: bool = True) -> str:
    env = {**os.environ, "IPS_URL": url, "IPS_WAIT_SECONDS": "90"}
    env.pop("IPS_TOKEN", None)
    if token is not None:
        env["IPS_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(
        "bash", str(ROOT / "test-api.sh"), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=180)
    text = out.decode()
    if ok:
        assert proc.returncode == 0, text
        assert "failed: 0" in text and "FAIL " not in text
    else:
        assert proc.returncode != 0 and "FAIL " in text, text
    return text


needs_jq = pytest.mark.skipif(shutil.which("jq") is None, reason="test-api.sh needs jq")


@needs_jq
async def test_the_test_api_script_passes_against_this_stack(
    real_api: ApiServer, engine: Worker
) -> None:
    await run_test_api_script(real_api.url)


@needs_jq
async def test_the_test_api_script_passes_with_auth_on(
    stack_settings: Settings, engine: Worker
) -> None:
    """Same queue and worker, a second API replica with auth on: the script sends the token;
    without it the script reports the 401s and exits non-zero."""
    settings = stack_settings.model_copy(
        update={"ips_api_tokens": SecretStr("t0ken-a,t0ken-b"), "ips_auth": None}
    )
    with serve_api(settings) as server:
        await run_test_api_script(server.url, token="t0ken-b")
        text = await run_test_api_script(server.url, ok=False)
        assert "ok    GET /healthz is 200" in text and "got HTTP 401" in text
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get(TASKS)).status_code == 401
            assert (await http.get("/readyz")).status_code == 200
