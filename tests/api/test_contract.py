"""The REST contract against a real Temporal dev server and the fake engine (same contract)."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from temporalio.client import Client

from tests.api.fake_engine import NODES
from tests.api.testlib import TASKS, ApiServer, outlive_view_cache, wait_status

pytestmark = pytest.mark.integration

ID_RE = re.compile(r"^task-\d{8}-\d{6}-[0-9a-f]{8}$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SEED_CREATE = {"images": ["nginx:latest", "redis:7"], "batchSize": 10}


async def create(http: httpx.AsyncClient, image: str = "nginx:latest", **extra: object) -> str:
    r = await http.post(TASKS, json={"images": [image], "batchSize": 2, **extra})
    assert r.status_code == 201, r.text
    return str(r.json()["taskId"])


async def test_health_ready_and_metrics_are_open(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert (await http.head("/healthz")).status_code == 200  # load balancers probe with HEAD
    r = await http.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ready"}
    r = await http.get("/metrics")
    assert r.status_code == 200 and "ips_api_request_seconds" in r.text


async def test_create_answers_201_with_location_and_the_seed_shape(
    http: httpx.AsyncClient,
) -> None:
    r = await http.post(TASKS, json={**SEED_CREATE, "nodeSelector": {"workload": "compute"}})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"taskId", "status", "images", "batchSize", "nodeSelector", "createdAt"}
    assert ID_RE.match(body["taskId"]) and TS_RE.match(body["createdAt"])
    assert body["status"] == "pending"
    assert body["images"] == ["nginx:latest", "redis:7"] and body["batchSize"] == 10
    assert body["nodeSelector"] == {"workload": "compute"}
    assert r.headers["location"] == f"{TASKS}/{body['taskId']}"
    # The ID's timestamp is the creation time.
    stamp = body["taskId"][5:20]
    assert body["createdAt"].replace("-", "").replace(":", "").replace("T", "-")[:15] == stamp


async def test_get_of_a_completed_task_has_the_full_seed_body(http: httpx.AsyncClient) -> None:
    task_id = await create(http)
    body = await wait_status(http, task_id, {"completed"})
    for key in ("taskId", "status", "images", "batchSize", "progress", "failedNodeDetails",
                "skippedNodeDetails", "createdAt", "startedAt", "finishedAt"):  # fmt: skip
        assert key in body, key
    assert set(body["progress"]) >= {
        "totalNodes", "completedNodes", "failedNodes", "currentBatch", "totalBatches",
        "percentage", "skippedNodes", "alreadyWarmNodes",
    }  # fmt: skip
    assert body["progress"]["completedNodes"] == NODES and body["progress"]["percentage"] == 100.0
    assert "message" not in body  # omitted unless the task failed


async def test_get_of_a_failed_task_has_message_and_failed_node_details(
    http: httpx.AsyncClient,
) -> None:
    task_id = await create(http, "example.com/team/fail:1")
    body = await wait_status(http, task_id, {"failed"})
    assert "maxFailureRatio" in body["message"]
    (detail,) = body["failedNodeDetails"]
    assert set(detail) >= {"nodeName", "reason", "message", "timestamp"}
    assert detail["reason"] == "ImageNotFound"


async def test_running_task_reads_live_progress_from_the_query(http: httpx.AsyncClient) -> None:
    task_id = await create(http, "example.com/hang:1")
    body = await wait_status(http, task_id, {"running"})
    assert body["progress"]["completedNodes"] == 1 and "message" not in body
    r = await http.delete(f"{TASKS}/{task_id}")
    assert r.status_code == 200, r.text


async def test_unknown_and_malformed_ids_are_404_with_task_id(http: httpx.AsyncClient) -> None:
    for tid in ("task-20260116-151234-a1b2c3d4", "nope", "ips-idempotency-abc"):
        for method in ("GET", "DELETE"):
            r = await http.request(method, f"{TASKS}/{tid}")
            assert r.status_code == 404, (method, tid, r.text)
            assert r.json() == {
                "error": "task not found",
                "details": f"no task with ID {tid!r}",
                "taskId": tid,
            }


async def test_cancel_a_running_task(http: httpx.AsyncClient) -> None:
    task_id = await create(http, "example.com/hang:1")
    await wait_status(http, task_id, {"running"})
    r = await http.delete(f"{TASKS}/{task_id}")
    assert r.status_code == 200
    assert r.json() == {
        "taskId": task_id,
        "status": "cancelled",
        "message": "Task cancelled successfully",
    }
    body = (await http.get(f"{TASKS}/{task_id}")).json()
    assert body["status"] == "cancelled" and body["progress"]["completedNodes"] == 1
    again = await http.delete(f"{TASKS}/{task_id}")
    assert again.status_code == 409
    assert again.json()["status"] == "cancelled" and again.json()["taskId"] == task_id


async def test_cancel_a_pending_task(http: httpx.AsyncClient) -> None:
    task_id = await create(http, "example.com/pending:1")
    r = await http.delete(f"{TASKS}/{task_id}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"


async def test_cancel_of_a_finished_task_is_409_with_its_final_status(
    http: httpx.AsyncClient,
) -> None:
    task_id = await create(http)
    await wait_status(http, task_id, {"completed"})
    r = await http.delete(f"{TASKS}/{task_id}")
    assert r.status_code == 409
    body = r.json()
    assert body["status"] == "completed" and body["taskId"] == task_id
    assert body["error"] == "conflict" and "completed" in body["details"]


async def test_cancel_not_confirmed_in_5s_is_202_cancelling(http: httpx.AsyncClient) -> None:
    task_id = await create(http, "example.com/slowcancel:1")
    await wait_status(http, task_id, {"running"})
    r = await http.delete(f"{TASKS}/{task_id}")
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "cancelling" and r.json()["taskId"] == task_id
    await wait_status(http, task_id, {"cancelled"}, within=20)


async def test_terminated_workflow_reads_as_failed_with_a_message(
    http: httpx.AsyncClient, dev_client: Client
) -> None:
    task_id = await create(http, "example.com/hang:1")
    await wait_status(http, task_id, {"running"})
    await dev_client.get_workflow_handle(task_id).terminate(reason="operator: node pool drained")
    await outlive_view_cache()  # the API did not make this change: its running view may be kept
    body = (await http.get(f"{TASKS}/{task_id}")).json()
    assert body["status"] == "failed"
    assert "terminated" in body["message"] and "node pool drained" in body["message"]
    assert body["progress"]["completedNodes"] == 1 and body["finishedAt"]
    assert body["images"] == ["example.com/hang:1"]
    failed = (await http.get(TASKS, params={"status": "failed", "limit": 100})).json()
    assert task_id in {t["taskId"] for t in failed["tasks"]}
    r = await http.delete(f"{TASKS}/{task_id}")
    assert r.status_code == 409 and r.json()["status"] == "failed"


async def test_metrics_count_started_tasks_and_latency_by_route_template(
    http: httpx.AsyncClient,
) -> None:
    def started(text: str) -> float:
        m = re.search(r"^ips_tasks_started_total (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    before = started((await http.get("/metrics")).text)
    task_id = await create(http)
    await http.get(f"{TASKS}/{task_id}")
    text = (await http.get("/metrics")).text
    assert started(text) == before + 1
    assert 'route="/api/v1/tasks/{task_id}"' in text
    assert task_id not in text


async def test_openapi_is_accurate(http: httpx.AsyncClient, api: ApiServer) -> None:
    doc = (await http.get("/openapi.json")).json()
    ops = doc["paths"]
    assert set(ops) >= {"/healthz", "/readyz", "/metrics", TASKS, f"{TASKS}/{{task_id}}"}
    for path in ops.values():
        for op in path.values():
            assert "422" not in op["responses"]
    post = ops[TASKS]["post"]["responses"]
    assert {"200", "201", "400", "409", "413", "503"} <= set(post)
    assert "401" not in post and "securitySchemes" not in doc["components"]  # auth is off
    assert set(ops[f"{TASKS}/{{task_id}}"]["delete"]["responses"]) >= {"200", "202", "404", "409"}
    schemas = doc["components"]["schemas"]
    assert schemas["TaskSpec"]["examples"][0]["images"] == ["nginx:latest", "redis:7"]
    assert "HTTPValidationError" not in schemas
    assert (await http.get("/docs")).status_code == 200


async def test_docs_need_no_cdn(http: httpx.AsyncClient) -> None:
    """Air-gapped clusters: every script and stylesheet of /docs and /redoc is served by us."""
    for page in ("/docs", "/redoc"):
        html = (await http.get(page)).text
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
        assert assets, f"{page} references no assets"
        for url in assets:
            assert url.startswith("/"), f"{page} loads {url} from outside"
            assert (await http.get(url)).status_code == 200, url


async def test_cors_is_off_by_default(http: httpx.AsyncClient) -> None:
    r = await http.options(
        TASKS,
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in r.headers


async def test_concurrent_reads_do_not_block_each_other(http: httpx.AsyncClient) -> None:
    ids = [await create(http) for _ in range(3)]
    results = await asyncio.gather(*(http.get(f"{TASKS}/{i}") for i in ids * 3))
    assert all(r.status_code == 200 for r in results)
