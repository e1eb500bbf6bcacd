"""Payloads stay far below Temporal's 2 MB limit at 5,000 nodes, even when every node fails."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from common.models import EngineState, FailedNodeDetail, FailureReason, TaskSpec, TaskStatus
from common.settings import Settings
from tests.engine.conftest import MockEngine, start
from worker.main import build_worker
from workflows.types import NodeOutcome, NodeSelection

pytestmark = pytest.mark.unit

N = 5000
LIMIT = 2 * 1024 * 1024
IMAGE = "registry.example.com/platform/team/application-server:2026.01.16-abcdef1"


def _node(i: int) -> str:
    return f"ip-10-{i // 250}-{i % 250}-17.eu-west-1.compute.internal"


def _fail(node: str) -> NodeOutcome:
    message = (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{IMAGE}": '
        f'failed to resolve reference "{IMAGE}": {IMAGE}: not found'
    )
    return NodeOutcome(
        node_name=node,
        ok=False,
        failure=FailedNodeDetail(
            node_name=node,
            image=IMAGE,
            reason=FailureReason.IMAGE_NOT_FOUND,
            message=message,
            timestamp=datetime.now(UTC),
        ),
    )


@pytest.mark.integration  # the time-skipping test server
async def test_5000_failed_nodes_keep_every_payload_small(skip_env: WorkflowEnvironment) -> None:
    names = sorted(_node(i) for i in range(N))
    mock = MockEngine(selection=NodeSelection(matched=N, targets=names), outcome=_fail)
    queue = f"engine-{uuid.uuid4().hex[:8]}"
    spec = TaskSpec(images=[IMAGE, "nginx:latest"], batch_size=100)
    worker = await build_worker(
        skip_env.client, Settings(), task_queue=queue, activities=mock.activities()
    )
    async with worker:
        handle = await start(skip_env.client, queue, spec, state=EngineState(units_per_run=25))
        view = await handle.result()

    assert view.status == TaskStatus.COMPLETED
    assert view.progress.failed_nodes == N
    # Full details for every node, with messages trimmed as documented.
    assert [d.node_name for d in view.failed_node_details] == names
    assert all(d.reason == FailureReason.IMAGE_NOT_FOUND for d in view.failed_node_details)
    assert all(len(d.message) <= 256 for d in view.failed_node_details)
    assert view.failed_node_details[0].message.startswith("rpc error: code = NotFound")

    result_bytes = len(view.model_dump_json(by_alias=True))
    # The biggest payloads in the history: the final result and each continue-as-new input.
    biggest = 0
    run_id: str | None = handle.first_execution_run_id
    while run_id is not None:
        h = skip_env.client.get_workflow_handle(handle.id, run_id=run_id)
        nxt = None
        async for e in h.fetch_history_events():
            for payloads in _payloads(e):
                biggest = max(biggest, sum(len(p.data) for p in payloads))
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                nxt = e.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        run_id = nxt
    print(
        f"\nresult {result_bytes / 1024:.0f} KiB; biggest history payload {biggest / 1024:.0f} KiB"
    )
    assert biggest >= result_bytes * 0.9  # the measurement saw the result itself
    assert biggest < LIMIT / 2, f"{biggest} bytes is not far below 2 MB"


def _payloads(e: object) -> list[list[object]]:
    out: list[list[object]] = []
    for field in (
        "workflow_execution_completed_event_attributes",
        "workflow_execution_continued_as_new_event_attributes",
        "activity_task_scheduled_event_attributes",
        "activity_task_completed_event_attributes",
    ):
        if e.HasField(field):  # type: ignore[attr-defined]
            attrs = getattr(e, field)
            for name in ("result", "input"):
                if name in type(attrs).DESCRIPTOR.fields_by_name and attrs.HasField(name):
                    out.append(list(getattr(attrs, name).payloads))
    return out
