"""A task's state as Temporal records it, readable with no worker: its search attributes
(status and counters) and the memo the API wrote at create (images, batch size, createdAt).

The list filter and the item status must agree: `STATUS_CLAUSES` mirrors `derive_status`.
"""

from __future__ import annotations

import logging
from typing import Any

from temporalio.client import WorkflowExecution, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey, TypedSearchAttributes

from common.models import Progress, TaskCreated, TaskStatus
from common.temporal import MEMO_TASK, SearchAttr

log = logging.getLogger(__name__)

# Visibility clause per status; mirrors `derive_status` exactly, so `total` counts what is listed.
STATUS_CLAUSES: dict[TaskStatus, str] = {
    TaskStatus.PENDING: "ExecutionStatus = 'Running' AND IpsStatus = 'pending'",
    TaskStatus.RUNNING: "ExecutionStatus = 'Running' AND IpsStatus != 'pending'",
    TaskStatus.COMPLETED: (
        "ExecutionStatus = 'Completed' AND IpsStatus != 'failed' AND IpsStatus != 'cancelled'"
    ),
    TaskStatus.FAILED: (
        "((ExecutionStatus = 'Completed' AND IpsStatus = 'failed')"
        " OR ExecutionStatus = 'Failed' OR ExecutionStatus = 'Terminated'"
        " OR ExecutionStatus = 'TimedOut')"
    ),
    TaskStatus.CANCELLED: (
        "((ExecutionStatus = 'Completed' AND IpsStatus = 'cancelled')"
        " OR ExecutionStatus = 'Canceled')"
    ),
}


def _recorded_status(attributes: TypedSearchAttributes) -> TaskStatus | None:
    raw = attributes.get(SearchAttr.STATUS.key)
    try:
        return TaskStatus(raw) if raw is not None else None
    except ValueError:
        return None


def derive_status(
    execution: WorkflowExecutionStatus | None, attributes: TypedSearchAttributes
) -> TaskStatus:
    """The task status from the execution status and IpsStatus, without asking a worker."""
    recorded = _recorded_status(attributes)
    if execution == WorkflowExecutionStatus.RUNNING:
        return TaskStatus.PENDING if recorded in (None, TaskStatus.PENDING) else TaskStatus.RUNNING
    if execution == WorkflowExecutionStatus.COMPLETED:
        if recorded in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            return recorded
        return TaskStatus.COMPLETED
    if execution == WorkflowExecutionStatus.CANCELED:
        return TaskStatus.CANCELLED
    return TaskStatus.FAILED


def _counter(attributes: TypedSearchAttributes, key: SearchAttributeKey[Any]) -> int:
    """Counters are Int, Double or Keyword (SQL visibility caps each type at three)."""
    value = attributes.get(key)
    if value is None:
        return 0
    try:
        return max(0, int(float(value)))
    except (TypeError, ValueError):
        return 0


def progress_from_sa(attributes: TypedSearchAttributes) -> Progress:
    """The last progress the workflow recorded in its search attributes."""
    total = _counter(attributes, SearchAttr.TOTAL_NODES.key)
    completed = _counter(attributes, SearchAttr.COMPLETED_NODES.key)
    failed = _counter(attributes, SearchAttr.FAILED_NODES.key)
    warm = _counter(attributes, SearchAttr.WARM_NODES.key)
    return Progress(
        total_nodes=total,
        completed_nodes=completed,
        failed_nodes=failed,
        skipped_nodes=_counter(attributes, SearchAttr.SKIPPED_NODES.key),
        already_warm_nodes=warm,
        current_batch=_counter(attributes, SearchAttr.CURRENT_BATCH.key),
        total_batches=_counter(attributes, SearchAttr.TOTAL_BATCHES.key),
        percentage=Progress.compute_percentage(total, completed, failed, warm),
    )


async def task_from_memo(execution: WorkflowExecution) -> TaskCreated | None:
    """The task as created (the `task` memo), or None when the memo is missing or unreadable."""
    try:
        memo = await execution.memo()
        raw = memo.get(MEMO_TASK)
        return TaskCreated.model_validate(raw) if raw is not None else None
    except Exception:  # a workflow of our type started by hand may carry anything
        log.warning("workflow %s has no readable task memo", execution.id)
        return None
