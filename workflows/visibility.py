"""What Temporal shows of a running task: typed search attributes and the Web UI details.

The status is upserted on every change; the progress counters at every batch boundary and,
from live outcomes, at most once per SEARCH_ATTR_MIN_INTERVAL (and never when unchanged).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from common.engine import EngineState
    from common.models import Progress, TaskSpec, TaskStatus
    from common.temporal import SearchAttr

SEARCH_ATTR_MIN_INTERVAL = timedelta(seconds=1)


class Visibility:
    """Upserts the task's search attributes and sets its Web UI details (workflow calls)."""

    def __init__(self) -> None:
        self._last_counters: Any = None
        self._last_upsert = workflow.now() - SEARCH_ATTR_MIN_INTERVAL

    @staticmethod
    def set_status(status: TaskStatus) -> None:
        workflow.upsert_search_attributes([SearchAttr.STATUS.value_set(status)])

    def upsert_counters(self, progress: Progress, *, force: bool) -> None:
        counters = (
            progress.total_nodes,
            progress.completed_nodes,
            progress.failed_nodes,
            progress.skipped_nodes,
            progress.already_warm_nodes,
            progress.current_batch,
            progress.total_batches,
        )
        now = workflow.now()
        if counters == self._last_counters:
            return
        if not force and now - self._last_upsert < SEARCH_ATTR_MIN_INTERVAL:
            return
        self._last_counters, self._last_upsert = counters, now
        workflow.upsert_search_attributes(
            [
                SearchAttr.TOTAL_NODES.value_set(progress.total_nodes),
                SearchAttr.COMPLETED_NODES.value_set(progress.completed_nodes),
                SearchAttr.FAILED_NODES.value_set(progress.failed_nodes),
                # SQL visibility caps Int at 3 attributes: value_set stores these as Double
                # and Keyword (common/temporal.py).
                SearchAttr.SKIPPED_NODES.value_set(progress.skipped_nodes),
                SearchAttr.WARM_NODES.value_set(progress.already_warm_nodes),
                SearchAttr.CURRENT_BATCH.value_set(progress.current_batch),
                SearchAttr.TOTAL_BATCHES.value_set(progress.total_batches),
            ]
        )

    @staticmethod
    def set_web_ui_details(spec: TaskSpec, state: EngineState) -> None:
        """Current details for the Temporal Web UI: the images, node count and progress."""
        progress = state.progress
        images = ", ".join(spec.images[:5]) + (
            f" (+{len(spec.images) - 5})" if len(spec.images) > 5 else ""
        )
        workflow.set_current_details(
            f"**{state.status.value}** · {images} · {progress.total_nodes} nodes · "
            f"batch {progress.current_batch}/{progress.total_batches} · "
            f"{progress.completed_nodes} completed, "
            f"{progress.failed_nodes} failed, {progress.already_warm_nodes} warm, "
            f"{progress.skipped_nodes} skipped"
            + (
                f" · following, {state.nodes_added} joined"
                if state.following_since is not None
                else ""
            )
        )
