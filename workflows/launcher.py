"""ScheduleLauncherWorkflow: the action of every IPS schedule; one run starts one ordinary task.

A Temporal Schedule names each workflow it starts `<action ID>-<scheduled time>`, which is not
a task ID. This thin workflow starts PrewarmWorkflow as its child under a task ID in the seed's
format, `task-YYYYMMDD-HHMMSS-<8 hex>`, built deterministically from the launcher's own workflow
ID and run ID and its start time, so a replay starts the same child. The run ID matters: a
trigger's workflow ID holds its time to the second only, and Temporal starts triggered runs with
ALLOW_DUPLICATE, so two triggers in one second give two launcher runs of one workflow ID. The child
carries IpsScheduleId and the same memo as an API-created task, so /api/v1/tasks lists, reads,
watches and cancels it like any other. The launcher waits for the child, so the schedule's
overlap policy sees a run as running until its task ends; cancelling the launcher (overlap
cancel_older, or DELETE of the schedule) cancels the task with it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from temporalio import workflow
from temporalio.common import TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from common.engine import LauncherInput, LauncherResult, PrewarmInput
    from common.models import TaskCreated, TaskStatus, TaskView
    from common.temporal import (
        LAUNCHER_WORKFLOW_NAME,
        MEMO_OWNER,
        MEMO_TASK,
        WORKFLOW_NAME,
        SearchAttr,
    )


# Before this patch the child's ID came from the launcher's workflow ID alone, which two runs
# triggered in the same second share (issue 15): their second child was refused as a duplicate.
TASK_ID_PER_RUN_PATCH = "task-id-per-launcher-run"


def launcher_task_id(launcher_workflow_id: str, now: datetime, run_id: str | None = None) -> str:
    """`task-YYYYMMDD-HHMMSS-<8 hex>`: the time of the run, and 32 bits of a hash of the
    launcher's workflow ID and run ID. The workflow ID holds the schedule ID and the scheduled
    (or triggered) time to the second; the run ID tells apart two runs of that one ID, which
    Temporal makes for two triggers within a second (manual starts use ALLOW_DUPLICATE:
    temporalio/temporal service/worker/scheduler/workflow.go, `startWorkflow`)."""
    key = launcher_workflow_id if run_id is None else f"{launcher_workflow_id}/{run_id}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"task-{now:%Y%m%d-%H%M%S}-{digest}"


@workflow.defn(name=LAUNCHER_WORKFLOW_NAME)
class ScheduleLauncherWorkflow:
    @workflow.run
    async def run(self, inp: LauncherInput) -> LauncherResult:
        info = workflow.info()
        now = workflow.now().replace(microsecond=0)
        per_run = workflow.patched(TASK_ID_PER_RUN_PATCH)
        task_id = launcher_task_id(info.workflow_id, now, info.run_id if per_run else None)
        task = TaskCreated(
            task_id=task_id,
            status=TaskStatus.PENDING,
            images=inp.spec.images,
            batch_size=inp.spec.batch_size,
            node_selector=inp.spec.node_selector,
            created_at=now,
        )
        handle = await workflow.start_child_workflow(
            WORKFLOW_NAME,
            PrewarmInput(task_id=task_id, spec=inp.spec, created_at=now),
            id=task_id,
            task_queue=info.task_queue,
            result_type=TaskView,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttr.STATUS.pair(TaskStatus.PENDING.value),
                    SearchAttr.SCHEDULE_ID.pair(inp.schedule_id),
                ]
            ),
            memo={MEMO_TASK: task.model_dump(mode="json"), MEMO_OWNER: inp.owner},
            static_summary=f"Run of schedule {inp.schedule_id}: prewarm {inp.spec.images[0]}",
        )
        workflow.logger.info("schedule %s started task %s", inp.schedule_id, task_id)
        try:
            view = await handle
        except ChildWorkflowError:
            return LauncherResult(task_id=task_id, status=TaskStatus.FAILED)
        return LauncherResult(task_id=task_id, status=view.status)
