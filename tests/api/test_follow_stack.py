"""Follow mode through the REST API on the real stack (dev server, real worker, kubesim).

POST with `follow`, GET while following (`phase`, `following`, a growing `totalNodes`), a node
that joins like an autoscaler's, DELETE (cancelled, with clean-up), and the final task.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.jobspec import task_selector
from common.settings import Settings
from kubesim.testing import SimHandle, start_sim
from tests.api.testlib import TASKS, api_settings, new_queue, serve_api, wait_status
from tests.waiting import async_wait_until
from worker.main import build_worker

pytestmark = pytest.mark.integration

IMAGE = "registry.example.com/ips-test/follow-api:1"
SCENARIO: dict[str, Any] = {
    "defaults": {"imageSize": "5MiB", "pullOverheadSeconds": 0.1, "containerRunSeconds": 0.1},
    "nodeGroups": [{"name": "compute", "count": 3, "labels": {"pool": "compute"}}],
}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with start_sim(scenario=SCENARIO, time_scale=10.0) as handle:
        yield handle


@pytest.fixture(scope="module")
def settings(dev_address: str, sim: SimHandle) -> Settings:
    return api_settings(dev_address, new_queue("ips-api-follow"), kubeconfig=sim.kubeconfig_path)


@pytest.fixture
async def http(dev_client: Client, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    with serve_api(settings) as server:
        async with (
            await build_worker(dev_client, settings),
            httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        ):
            yield client


async def get(http: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    r = await http.get(f"{TASKS}/{task_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_follow_through_the_api(http: httpx.AsyncClient, sim: SimHandle) -> None:
    r = await http.post(
        TASKS,
        json={"images": [IMAGE], "batchSize": 5, "nodeSelector": {"pool": "compute"},
              "follow": {}},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    task_id = r.json()["taskId"]

    async def phase_is_following() -> dict[str, Any] | None:
        body = await get(http, task_id)
        return body if body.get("phase") == "following" else None

    body = await async_wait_until(phase_is_following, 60, interval=0.2)
    assert body["status"] == "running"
    assert body["follow"] == {}
    assert body["following"]["nodesAdded"] == 0 and body["following"]["since"].endswith("Z")
    assert body["progress"]["totalNodes"] == 3

    joined = sim.join_nodes(1, "compute", ready_after=5, taints_removed_after=5)

    async def added() -> dict[str, Any] | None:
        body = await get(http, task_id)
        done = body["following"]["nodesAdded"] == 1 and body["progress"]["completedNodes"] == 4
        return body if done else None

    body = await async_wait_until(added, 60, interval=0.2)
    assert body["progress"]["totalNodes"] == 4 and body["progress"]["totalBatches"] == 2
    assert sim.pull_counts().get((joined[0], IMAGE)) == 1

    r = await http.delete(f"{TASKS}/{task_id}")
    assert r.status_code == 200, r.text
    final = await wait_status(http, task_id, {"cancelled"})
    assert "phase" not in final  # only while running
    assert final["following"]["nodesAdded"] == 1
    await async_wait_until(
        lambda: not sim.objects("jobs", label_selector=task_selector(task_id)), 30
    )
