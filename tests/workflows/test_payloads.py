"""Payloads stay far below Temporal's 2 MB limit at 5,000 nodes, even when every node fails."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from common.engine import EngineState, NodeOutcome, NodeSelection
from common.models import (
    NODE_NAMES_MAX_TOTAL_CHARS,
    FailedNodeDetail,
    FailureReason,
    TaskSpec,
    TaskStatus,
)
from common.settings import Settings
from tests.workflows.conftest import MockEngine, start
from worker.main import build_worker

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
    # Every node is named: one entry each at first, then GROUP_SIZE to an entry, in order.
    listed = [
        n
        for d in view.failed_node_details
        for n in (d.message.split(": ", 1)[1].split() if "(+" in d.node_name else [d.node_name])
    ]
    assert listed == names
    assert len(view.failed_node_details) < 1500
    assert all(d.reason == FailureReason.IMAGE_NOT_FOUND for d in view.failed_node_details)
    assert all(len(d.message) <= 256 for d in view.failed_node_details if "(+" not in d.node_name)
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
        "workflow_execution_started_event_attributes",
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


MAX_BODY = 1024 * 1024  # MAX_BODY_BYTES: the API's largest request


def _long(i: int) -> str:
    """A node name of the longest length that lets 10,000 of them fit the API's cap on
    nodeNames (NODE_NAMES_MAX_TOTAL_CHARS, issue 14): the most a request can name."""
    length = NODE_NAMES_MAX_TOTAL_CHARS // 10_000
    name = (
        f"ip-10-{i // 250:03d}-{i % 250:03d}.eu-west-1.compute.internal.pool-a.cluster-0123456789"
    )
    return (name + ".example-organisation.corp-zone-a")[: length - 1] + "z"


@pytest.mark.integration  # the time-skipping test server
async def test_api_maximum_sizes_stay_far_below_the_limit(skip_env: WorkflowEnvironment) -> None:
    """10,000 nodeNames at the API's cap on their length: 5,000 exist and all fail, 2,000
    are skipped and 3,000 do not exist. Every payload the engine builds (each batch's input,
    the listing's result, each continue-as-new input, the result) stays under 1 MiB; only the
    two that carry the request itself come near it. Every failed node is still named."""
    from common.models import SkippedNodeDetail, SkipReason

    names = sorted(_long(i) for i in range(10_000))
    assert len(set(names)) == 10_000 and all(n[-1] != "." for n in names)
    assert sum(map(len, names)) == NODE_NAMES_MAX_TOTAL_CHARS  # the most the API accepts
    targets, skipped, missing = names[:5000], names[5000:7000], names[7000:]
    sel = NodeSelection(
        matched=7000,
        targets=targets,
        skipped=[
            SkippedNodeDetail(node_name=n, reason=SkipReason.NOT_READY, message="node is NotReady")
            for n in skipped
        ],
        missing=missing,
    )
    from activities.prewarm import bound_missing, bound_skipped

    mock = MockEngine(selection=bound_missing(bound_skipped(sel)), outcome=_fail)
    queue = f"engine-{uuid.uuid4().hex[:8]}"
    spec = TaskSpec(images=[IMAGE, "nginx:latest"], batch_size=100, node_names=names)
    body = len(spec.model_dump_json(by_alias=True, exclude_defaults=True))
    assert body <= MAX_BODY
    with pytest.raises(ValueError, match="at most"):  # one character more is refused
        TaskSpec(images=spec.images, batch_size=100, node_names=[*names[:-1], names[-1] + "z"])
    worker = await build_worker(
        skip_env.client, Settings(), task_queue=queue, activities=mock.activities()
    )
    async with worker:
        handle = await start(skip_env.client, queue, spec, state=EngineState(units_per_run=25))
        view = await handle.result()
    from common.engine import ListNodesInput

    mock_sizes = {
        "list_nodes": len(
            ListNodesInput(task_id=handle.id, spec=spec).model_dump_json(by_alias=True)
        )
    }

    assert view.status == TaskStatus.COMPLETED
    p = view.progress
    assert (p.total_nodes, p.failed_nodes, p.skipped_nodes) == (8000, 8000, 2000)
    # Every failed node is named (one by one, or in a group entry's message); the missing
    # nodeNames (the client's own names) by sorted ranges of 1,000.
    text = " ".join(f"{d.node_name} {d.message}" for d in view.failed_node_details)
    assert all(n in text for n in targets)
    gone = [d for d in view.failed_node_details if d.reason == FailureReason.NODE_GONE]
    assert [d.message for d in gone] == [
        f"1000 nodes named in nodeNames do not exist, sorted from {missing[i]} to "
        f"{missing[i + 999]}"
        for i in (0, 1000, 2000)
    ]
    assert len(view.failed_node_details) < 1000
    assert view.node_names == names[:100]
    skipped_text = " ".join(d.message for d in view.skipped_node_details)
    assert all(n in skipped_text for n in skipped)
    # Each batch got a slim input: its nodes and the pull settings, never the nodeNames.
    assert all(len(c.model_dump_json(by_alias=True)) < 20_000 for c in mock.calls)

    biggest = 0
    per_kind: dict[str, int] = {}
    run_id: str | None = handle.first_execution_run_id
    while run_id is not None:
        h = skip_env.client.get_workflow_handle(handle.id, run_id=run_id)
        nxt = None
        async for e in h.fetch_history_events():
            for payloads in _payloads(e):
                size = sum(len(p.data) for p in payloads)
                kind = EventType.Name(e.event_type)
                per_kind[kind] = max(per_kind.get(kind, 0), size)
                biggest = max(biggest, size)
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                nxt = e.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        run_id = nxt
    print("\nbiggest payloads (KiB):", {k: round(v / 1024) for k, v in per_kind.items()})
    # The start input and the listing's input carry the request itself; every other payload,
    # which the engine builds, stays under 1 MiB.
    started = per_kind.pop("EVENT_TYPE_WORKFLOW_EXECUTION_STARTED")
    assert started < 1.1 * body
    listing_input = mock_sizes["list_nodes"]
    assert listing_input < 1.1 * body
    scheduled = per_kind.pop("EVENT_TYPE_ACTIVITY_TASK_SCHEDULED")
    assert scheduled == listing_input  # the biggest scheduled input is the listing's
    assert max(per_kind.values()) < LIMIT / 2, per_kind
    assert biggest < LIMIT * 0.6
