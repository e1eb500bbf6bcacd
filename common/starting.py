"""The one way to start the prewarm workflow (the workflow ID is the task ID).

Every start goes through `start_prewarm_workflow`, the API's and those of the tests, the bench
and the history generator alike: the workflow by name (the caller never imports the engine),
the given task queue, `IpsStatus=pending` from the first moment (the list filters on it), and
the one-line summary the Temporal Web UI shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy

from common.engine import PrewarmInput
from common.models import TaskSpec, TaskStatus, TaskView
from common.temporal import WORKFLOW_NAME, SearchAttr


async def start_prewarm_workflow(
    client: Client,
    task_queue: str,
    prewarm_input: PrewarmInput,
    *,
    idempotency_key: str | None = None,
    memo: Mapping[str, Any] | None = None,
    rpc_timeout: timedelta | None = None,
) -> WorkflowHandle[Any, TaskView]:
    """Start `PrewarmWorkflow` for `prewarm_input.task_id`, pending, with its Web UI summary.

    A second start of the same task ID raises WorkflowAlreadyStartedError (REJECT_DUPLICATE
    also covers a closed one until the namespace retention removes it)."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(SearchAttr.STATUS.key, TaskStatus.PENDING.value)
    ]
    if idempotency_key is not None:
        pairs.append(SearchAttributePair(SearchAttr.IDEMPOTENCY_KEY.key, idempotency_key))
    return await client.start_workflow(
        WORKFLOW_NAME,
        prewarm_input,
        id=prewarm_input.task_id,
        task_queue=task_queue,
        result_type=TaskView,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes(pairs),
        memo=memo,
        static_summary=web_ui_summary(prewarm_input.spec),
        rpc_timeout=rpc_timeout,
    )


def web_ui_summary(spec: TaskSpec) -> str:
    """A one-line summary for the Temporal Web UI."""
    first = spec.images[0]
    more = f" +{len(spec.images) - 1} more" if len(spec.images) > 1 else ""
    where = (
        f"{len(spec.node_names)} named node(s)"
        if spec.node_names
        else ("nodes " + ",".join(f"{k}={v}" for k, v in spec.node_selector.items()))
        if spec.node_selector
        else "all nodes"
    )
    return f"Prewarm {first}{more} on {where}, batches of {spec.batch_size}"
