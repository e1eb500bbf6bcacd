"""Pure parts of the API: IDs, hashes, status derivation, error wording, the OpenAPI shape."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus as WES
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from api.errors import describe_validation_errors
from api.main import create_app
from api.tasks.idempotency import body_hash, reservation_id
from api.tasks.ids import new_task_id
from api.tasks.recorded_state import STATUS_CLAUSES, derive_status, progress_from_sa
from common import temporal as t
from common.models import TaskSpec, TaskStatus
from common.settings import Settings

pytestmark = pytest.mark.unit


def sa(status: str | None, **counters: float | int | str) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair] = []  # type: ignore[type-arg]
    if status is not None:
        pairs.append(t.SearchAttr.STATUS.pair(status))
    attr = t.SearchAttr
    attrs = {"total": attr.TOTAL_NODES, "completed": attr.COMPLETED_NODES,
             "failed": attr.FAILED_NODES, "warm": attr.WARM_NODES,
             "batches": attr.TOTAL_BATCHES, "batch": attr.CURRENT_BATCH}  # fmt: skip
    for name, value in counters.items():
        pairs.append(SearchAttributePair(attrs[name].key, value))
    return TypedSearchAttributes(pairs)


def test_task_id_has_the_original_format_in_utc() -> None:
    when = datetime(2026, 1, 16, 15, 12, 34, tzinfo=UTC)
    tid = new_task_id(when)
    assert re.fullmatch(r"task-20260116-151234-[0-9a-f]{8}", tid)
    assert new_task_id(when) != tid


def test_body_hash_ignores_order_duplicates_and_explicit_defaults() -> None:
    a = TaskSpec.model_validate({"images": ["nginx", "redis:7"], "batchSize": 3})
    b = TaskSpec.model_validate(
        {"batchSize": 3, "images": ["nginx", "redis:7", "nginx"], "timeoutSeconds": 600}
    )
    c = TaskSpec.model_validate({"images": ["nginx", "redis:7"], "batchSize": 4})
    assert body_hash(a) == body_hash(b) != body_hash(c)


def test_reservation_id_is_per_queue_and_key() -> None:
    assert reservation_id("q", "k") == reservation_id("q", "k")
    assert reservation_id("q", "k") != reservation_id("q2", "k") != reservation_id("q", "k2")
    assert re.fullmatch(r"ips-idempotency-[0-9a-f]{40}", reservation_id("q", "x" * 255))


@pytest.mark.parametrize(
    ("execution", "recorded", "expected"),
    [
        (WES.RUNNING, None, TaskStatus.PENDING),
        (WES.RUNNING, "pending", TaskStatus.PENDING),
        (WES.RUNNING, "running", TaskStatus.RUNNING),
        (WES.RUNNING, "completed", TaskStatus.RUNNING),  # finishing: not closed yet
        (WES.COMPLETED, "completed", TaskStatus.COMPLETED),
        (WES.COMPLETED, "running", TaskStatus.COMPLETED),
        (WES.COMPLETED, "failed", TaskStatus.FAILED),
        (WES.COMPLETED, "cancelled", TaskStatus.CANCELLED),
        (WES.TERMINATED, "running", TaskStatus.FAILED),
        (WES.TIMED_OUT, "running", TaskStatus.FAILED),
        (WES.FAILED, "running", TaskStatus.FAILED),
        (WES.CANCELED, "running", TaskStatus.CANCELLED),
        (WES.RUNNING, "garbage", TaskStatus.PENDING),
    ],
)
def test_status_derivation(execution: WES, recorded: str | None, expected: TaskStatus) -> None:
    assert derive_status(execution, sa(recorded)) == expected


def test_every_status_has_a_visibility_clause() -> None:
    assert set(STATUS_CLAUSES) == set(TaskStatus)


def test_progress_from_mixed_typed_attributes() -> None:
    p = progress_from_sa(sa("running", total=50, completed=25, failed=2, warm=3.0, batches="5",
                            batch=3.0))  # fmt: skip
    assert (p.total_nodes, p.completed_nodes, p.failed_nodes, p.already_warm_nodes) == (
        50,
        25,
        2,
        3,
    )
    assert (p.current_batch, p.total_batches, p.percentage) == (3, 5, 60.0)
    assert progress_from_sa(sa(None)).percentage == 0.0


def test_validation_errors_name_field_and_rule() -> None:
    errors = [
        {"type": "less_than_equal", "loc": ("body", "batchSize"), "msg": "Input should be <= 100"},
        {"type": "value_error", "loc": ("body", "images", 0), "msg": "Value error, bad ref"},
        {"type": "extra_forbidden", "loc": ("body", "batchsize"), "msg": "Extra inputs"},
        {"type": "enum", "loc": ("query", "status"), "msg": "Input should be 'pending'"},
    ]
    assert describe_validation_errors(errors) == (
        "batchSize: Input should be <= 100; images[0]: bad ref; "
        "batchsize: unknown field (not part of the task spec); status: Input should be 'pending'"
    )


async def test_app_starts_without_temporal_and_documents_this_deployment() -> None:
    app = create_app(Settings(temporal_address="127.0.0.1:1", ips_api_tokens="tok"))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as client,
    ):
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["error"] == "not ready"
        doc = (await client.get("/openapi.json")).json()
        assert "HTTPBearer" in doc["components"]["securitySchemes"]
        assert "401" in doc["paths"]["/api/v1/tasks"]["post"]["responses"]
        assert (await client.get("/api/v1/tasks")).status_code == 401
        r = await client.get("/api/v1/tasks", headers={"Authorization": "Bearer tok"})
        assert r.status_code == 503 and r.headers["retry-after"]
