"""The task as the API shows it (`TaskView`), built from the workflow's input and state.

Pure: no workflow calls. The view echoes at most NODE_NAMES_SHOWN nodeNames, and so does the
input a continued run carries (workflows/failurelog.py says why everything is bounded).
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from common.engine import EngineState, PrewarmInput
    from common.models import Following, ResolvedImageRef, TaskPhase, TaskStatus, TaskView

NODE_NAMES_SHOWN = 100


def task_view(task_input: PrewarmInput, state: EngineState) -> TaskView:
    spec = task_input.spec
    return TaskView(
        task_id=task_input.task_id,
        status=state.status,
        images=list(spec.images),
        batch_size=spec.batch_size,
        node_selector=dict(spec.node_selector),
        node_names=list(spec.node_names[:NODE_NAMES_SHOWN])
        if spec.node_names is not None
        else None,
        image_pull_policy=spec.image_pull_policy,
        strategy=spec.strategy,
        timeout_seconds=spec.timeout_seconds,
        max_failure_ratio=spec.max_failure_ratio,
        pin_digests=spec.pin_digests,
        pacing=spec.pacing,
        progress=state.progress.model_copy(
            update={"in_flight_window": state.pacing.window if state.pacing else None}
        ),
        failed_node_details=list(state.failed_node_details),
        skipped_node_details=list(state.skipped_node_details),
        resolved_images=[
            ResolvedImageRef(image=r.image, digest=r.digest)
            for r in state.resolved_images
            if r.error is None and r.digest
        ],
        warnings=list(state.warnings),
        created_at=task_input.created_at,
        started_at=state.started_at,
        finished_at=state.finished_at,
        message=state.message,
        follow=spec.follow,
        phase=phase_of(task_input, state),
        following=Following(since=state.following_since, nodes_added=state.nodes_added)
        if state.following_since is not None
        else None,
    )


def phase_of(task_input: PrewarmInput, state: EngineState) -> TaskPhase | None:
    """A running task with `follow`: sweeping, then following; None otherwise."""
    if task_input.spec.follow is None or state.status != TaskStatus.RUNNING:
        return None
    return TaskPhase.SWEEPING if state.following_since is None else TaskPhase.FOLLOWING


def spec_for_next_run(spec: Any) -> Any:
    """The spec a continued run carries: the listing is done, so only the echoed nodeNames."""
    if spec.node_names is None or len(spec.node_names) <= NODE_NAMES_SHOWN:
        return spec
    return spec.model_copy(update={"node_names": spec.node_names[:NODE_NAMES_SHOWN]})
