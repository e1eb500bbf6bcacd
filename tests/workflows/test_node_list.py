"""PrewarmWorkflow and the node list: none matching, all skipped, all warm, named nodes
missing, listing failing (time-skipping server, activities mocked by name)."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from common.engine import NodeSelection
from common.models import FailureReason, SkippedNodeDetail, SkipReason, TaskStatus, TaskView
from tests.workflows.conftest import MockEngine, selection, start
from tests.workflows.runs import spec
from tests.workflows.runs import with_worker as _with_worker

# The time-skipping test server runs these workflows: not in `make test-fast`.
pytestmark = pytest.mark.integration


async def test_zero_nodes_matching_fails_with_a_message(env: WorkflowEnvironment) -> None:
    mock = MockEngine(selection=NodeSelection(matched=0))

    async def body(queue: str) -> TaskView:
        handle = await start(env.client, queue, spec(node_selector={"pool": "nope"}))
        return await handle.result()

    view = await _with_worker(env, mock, body)
    assert view.status == TaskStatus.FAILED
    assert view.message == "no node matches nodeSelector pool=nope"
    assert mock.calls == []
    assert view.progress.total_nodes == 0


async def test_all_nodes_skipped_fails_with_reasons(env: WorkflowEnvironment) -> None:
    skipped = [
        SkippedNodeDetail(node_name="a", reason=SkipReason.CORDONED),
        SkippedNodeDetail(node_name="b", reason=SkipReason.TAINTED),
        SkippedNodeDetail(node_name="c", reason=SkipReason.TAINTED),
    ]
    mock = MockEngine(selection=NodeSelection(matched=3, skipped=skipped))

    async def body(queue: str) -> TaskView:
        return await (await start(env.client, queue, spec())).result()

    view = await _with_worker(env, mock, body)
    assert view.status == TaskStatus.FAILED
    assert view.message is not None
    assert "all were skipped (1 Cordoned, 2 Tainted)" in view.message
    assert view.progress.skipped_nodes == 3


async def test_all_nodes_warm_completes_without_jobs(env: WorkflowEnvironment) -> None:
    mock = MockEngine(selection=NodeSelection(matched=4, warm=4))

    async def body(queue: str) -> TaskView:
        return await (await start(env.client, queue, spec())).result()

    view = await _with_worker(env, mock, body)
    assert view.status == TaskStatus.COMPLETED
    assert mock.calls == []
    assert (view.progress.already_warm_nodes, view.progress.percentage) == (4, 100.0)


async def test_missing_named_nodes_are_failed_node_gone(env: WorkflowEnvironment) -> None:
    mock = MockEngine(selection=NodeSelection(matched=2, targets=["a", "b"], missing=["ghost"]))

    async def body(queue: str) -> TaskView:
        s = spec(node_names=["a", "b", "ghost"])
        return await (await start(env.client, queue, s)).result()

    view = await _with_worker(env, mock, body)
    assert view.status == TaskStatus.COMPLETED
    assert (view.progress.total_nodes, view.progress.failed_nodes) == (3, 1)
    assert view.failed_node_details[0].reason == FailureReason.NODE_GONE


async def test_listing_failure_ends_failed_with_the_reason(env: WorkflowEnvironment) -> None:
    mock = MockEngine(
        selection=selection(1),
        list_error=ApplicationError(
            'nodes is forbidden: User "system:serviceaccount:ips:ips-worker" cannot list '
            'resource "nodes" in API group "" at the cluster scope',
            type="KubernetesForbidden",
            non_retryable=True,
        ),
    )

    async def body(queue: str) -> TaskView:
        return await (await start(env.client, queue, spec())).result()

    view = await _with_worker(env, mock, body)
    assert view.status == TaskStatus.FAILED
    assert view.message is not None
    assert view.message.startswith("listing nodes failed: nodes is forbidden")
