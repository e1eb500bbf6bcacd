"""A stand-in for the engine with the same contract: workflow name, input, query, attributes.

Behaviour is chosen by the first image's repository name, so API tests can create tasks that
complete, fail, hang, or ignore a cancel for a while:
  `.../hang`       runs (status running) until cancelled, then returns status cancelled;
  `.../pending`    stays pending until cancelled;
  `.../fail`       returns status failed with a message;
  `.../slowcancel` runs, and takes 6 s to honour a cancel (past the API's 5 s wait);
  anything else    completes after a short sleep with every node completed.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from common import temporal as t
    from common.engine import PrewarmInput
    from common.models import FailedNodeDetail, FailureReason, Progress, TaskStatus, TaskView

NODES = 4


@workflow.defn(name=t.WORKFLOW_NAME)
class FakePrewarmWorkflow:
    def __init__(self) -> None:
        self.view: TaskView | None = None

    def _set(self, status: TaskStatus, completed: int, failed: int = 0) -> None:
        assert self.view is not None
        p = Progress(
            total_nodes=NODES,
            completed_nodes=completed,
            failed_nodes=failed,
            current_batch=1 if status != TaskStatus.PENDING else 0,
            total_batches=2,
            percentage=Progress.compute_percentage(NODES, completed, failed, 0),
        )
        self.view.status = status
        self.view.progress = p
        workflow.upsert_search_attributes(
            [
                t.SearchAttr.STATUS.value_set(status.value),
                t.SearchAttr.TOTAL_NODES.value_set(NODES),
                t.SearchAttr.COMPLETED_NODES.value_set(completed),
                t.SearchAttr.FAILED_NODES.value_set(failed),
                t.SearchAttr.SKIPPED_NODES.value_set(0),
                t.SearchAttr.WARM_NODES.value_set(0),
                t.SearchAttr.CURRENT_BATCH.value_set(p.current_batch),
                t.SearchAttr.TOTAL_BATCHES.value_set(p.total_batches),
            ]
        )

    @workflow.run
    async def run(self, inp: PrewarmInput) -> TaskView:
        spec = inp.spec
        mode = spec.images[0].split(":")[0].rsplit("/", 1)[-1]
        self.view = TaskView(
            task_id=inp.task_id,
            status=TaskStatus.PENDING,
            images=spec.images,
            batch_size=spec.batch_size,
            node_selector=spec.node_selector,
            node_names=spec.node_names,
            strategy=spec.strategy,
            timeout_seconds=spec.timeout_seconds,
            created_at=inp.created_at,
        )
        try:
            if mode == "pending":
                await workflow.wait_condition(lambda: False)
            self.view.started_at = workflow.now()
            self._set(TaskStatus.RUNNING, 1)
            if mode in ("hang", "slowcancel"):
                await workflow.wait_condition(lambda: False)
            await workflow.sleep(timedelta(milliseconds=300))
            if mode == "fail":
                self.view.failed_node_details = [
                    FailedNodeDetail(
                        node_name="node-5",
                        image=spec.images[0],
                        reason=FailureReason.IMAGE_NOT_FOUND,
                        message="manifest unknown",
                        timestamp=workflow.now(),
                    )
                ]
                self.view.message = "too many nodes failed (1/4 > maxFailureRatio 0.0)"
                self._set(TaskStatus.FAILED, 3, 1)
            else:
                self._set(TaskStatus.COMPLETED, NODES)
        except asyncio.CancelledError:
            if mode == "slowcancel":
                await asyncio.shield(asyncio.ensure_future(workflow.sleep(6)))
            self._set(TaskStatus.CANCELLED, self.view.progress.completed_nodes)
        self.view.finished_at = workflow.now()
        return self.view

    @workflow.query(name=t.QUERY_PROGRESS)
    def progress(self) -> TaskView:
        assert self.view is not None
        return self.view
