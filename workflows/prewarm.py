"""PrewarmWorkflow: one durable workflow per prewarm task (workflow ID = task ID).

Deterministic orchestration only: Kubernetes is reached through activities called by name.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, RetryState, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from common.engine import (
        ACTIVITY_CLEANUP,
        ACTIVITY_LIST_NODES,
        ACTIVITY_PREWARM_NODES,
        SIGNAL_NODE_OUTCOMES,
        CleanupInput,
        CleanupResult,
        EngineState,
        ListNodesInput,
        NodeOutcome,
        NodeOutcomes,
        NodeSelection,
        PrewarmInput,
        PrewarmNodesInput,
        PrewarmNodesResult,
        PullSpec,
    )
    from common.models import (
        FailedNodeDetail,
        FailureReason,
        Progress,
        Strategy,
        TaskStatus,
        TaskView,
    )
    from common.observability import TASKS_FINISHED
    from common.pacing import AimdWindow
    from common.temporal import QUERY_PROGRESS, WORKFLOW_NAME
    from workflows import preflight
    from workflows.failurelog import NO_OUTCOME, FailureLog, failed, missing_node, missing_range
    from workflows.follow import PATCH_FOLLOW, add_joined, follow
    from workflows.messages import (
        all_skipped_message,
        completion_message,
        failure_ratio_message,
        failure_reason,
        no_match_message,
    )
    from workflows.timeouts import (
        CLEANUP_HEARTBEAT_TIMEOUT,
        CLEANUP_RETRY,
        CLEANUP_TIMEOUT,
        HEARTBEAT_TIMEOUT,
        LIST_NODES_HEARTBEAT_TIMEOUT,
        LIST_NODES_TIMEOUT,
        LIST_RETRY,
        PREWARM_HEARTBEAT_TIMEOUT,
        PREWARM_RETRY,
        PREWARM_RETRY_ALLOWANCE,
        PREWARM_RETRY_BY_TIME,
        batch_budget,
    )
    from workflows.view import spec_for_next_run, task_view
    from workflows.visibility import Visibility

# Continue as new after this many batches, or earlier when the server suggests it or the
# history passes HISTORY_BUDGET events: no run comes near Temporal's 10,000-event warning.
DEFAULT_UNITS_PER_RUN = 100
HISTORY_BUDGET = 5000
# A rolling window is one activity that keeps batchSize Jobs in flight over this many batches.
ROLLING_WINDOW_BATCHES = 10
ROLLING_WINDOW_MAX_NODES = 1000
# Everything in the state and the view that grows with the node count is bounded, so a task at
# the API's maximum sizes stays far below Temporal's 2 MiB payload limit: workflows/failurelog.py.
PATCH_RETRIES = (
    "prewarm-retries-by-time"  # issue 12: slim options (workflows/timeouts.py), unlimited attempts
)
PATCH_CANCEL_ON_TIMEOUT = "cancel-on-heartbeat-timeout"  # issue 12, item 9


class _Stop(Exception):
    """Raised inside the workflow to end `failed` with a message (not a Temporal failure)."""


class _StopBeforeJobs(_Stop):
    """A `_Stop` before anything could have created a Job (the preflight): no clean-up."""


@workflow.defn(name=WORKFLOW_NAME)
class PrewarmWorkflow:
    """Pre-pull `spec.images` on every eligible node, batch by batch (or rolling).

    The workflow ALWAYS completes normally and returns the final `TaskView`, whether the task
    ended `completed`, `failed` (with `message` saying why) or `cancelled`. A Temporal cancel is
    handled, not propagated: Job creation stops, the running batch activity is cancelled, a
    clean-up activity that cannot be cancelled deletes the task's Jobs and Pods, and the result
    carries status `cancelled` with progress frozen at the cancel. So a finished task's full
    details are readable from the workflow result with no worker running, and the real outcome
    is in the `IpsStatus` search attribute (the Temporal execution status is always Completed).

    State lives in one `EngineState`, carried across continue-as-new at batch boundaries; the
    workflow ID (the task ID) stays the same, so queries keep working across runs.
    """

    @workflow.init
    def __init__(self, task_input: PrewarmInput) -> None:
        self._input = task_input
        self._state = task_input.state.model_copy(deep=True) if task_input.state else EngineState()
        self._current_batch = 0
        self._seen: set[str] = set()
        self._frozen = False
        self._stop_reason: str | None = None
        self._handle: workflow.ActivityHandle[Any] | None = None
        self._units_this_run = 0
        self._visibility = Visibility()
        self._failures = FailureLog(self._state.failed_node_details)

    # --- Queries and signals -------------------------------------------------------------

    @workflow.query(name=QUERY_PROGRESS)
    def progress(self) -> TaskView:
        return task_view(self._input, self._state)

    @workflow.signal(name=SIGNAL_NODE_OUTCOMES)
    def node_outcomes(self, batch: NodeOutcomes) -> None:
        """Live outcomes from the running batch activity, so progress moves within a batch."""
        if self._frozen or batch.unit != self._current_batch:
            return
        if batch.joined:
            add_joined(self, batch.unit, batch.joined)  # follow mode: workflows/follow.py
        for outcome in batch.outcomes:
            self._record(outcome)
        if batch.pacing is not None and preflight.adaptive(self._input.spec, self._state):
            self._state.pacing = batch.pacing
        self._check_failure_ratio()
        self._upsert_counters(force=False)

    # --- Main ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, task_input: PrewarmInput) -> TaskView:
        state = self._state
        try:
            if not state.listed:
                state.started_at = workflow.now()
                self._set_status(TaskStatus.RUNNING)
                if workflow.patched(preflight.PATCH_PREFLIGHT):
                    await self._preflight()
                self._log("listing nodes")
                selection = await workflow.execute_activity(
                    ACTIVITY_LIST_NODES,
                    self._listing_input(),
                    result_type=NodeSelection,
                    start_to_close_timeout=LIST_NODES_TIMEOUT,
                    heartbeat_timeout=LIST_NODES_HEARTBEAT_TIMEOUT,
                    retry_policy=LIST_RETRY,
                    summary="list nodes",
                )
                self._apply_selection(selection)
            self._visibility.set_web_ui_details(self._input.spec, self._state)
            while state.pending and self._stop_reason is None:
                if self._should_continue_as_new():
                    await self._continue_as_new()
                await self._run_unit()
            if self._stop_reason is not None:
                raise _Stop(self._stop_reason)
            if self._input.spec.follow is not None and workflow.patched(PATCH_FOLLOW):
                await follow(self)  # workflows/follow.py: until its end, a stop or a cancel
                if self._stop_reason is not None:
                    raise _Stop(self._stop_reason)
            return self._finish(TaskStatus.COMPLETED, completion_message(state))
        except _Stop as stop:
            self._frozen = True
            if not isinstance(stop, _StopBeforeJobs):
                await self._cleanup()
            return self._finish(TaskStatus.FAILED, str(stop))
        except (asyncio.CancelledError, ActivityError) as err:
            self._frozen = True
            if self._stop_reason is None and self._is_cancel(err):
                self._log("cancel requested: stopping and cleaning up")
                await self._cleanup()
                return self._finish(TaskStatus.CANCELLED, "Task cancelled by request")
            message = self._stop_reason or failure_reason(err)
            await self._cleanup()
            return self._finish(TaskStatus.FAILED, message)

    @staticmethod
    def _is_cancel(err: BaseException) -> bool:
        """A cancel, including one whose batch worker died: the heartbeat timeout then arrives
        with retry_state CANCEL_REQUESTED (Temporal retries nothing once a cancel is asked)."""
        if is_cancelled_exception(err):
            return True
        return (
            isinstance(err, ActivityError)
            and err.retry_state == RetryState.CANCEL_REQUESTED
            and workflow.patched(PATCH_CANCEL_ON_TIMEOUT)
        )

    # --- Preflight (issue 16; workflows/preflight.py) -------------------------------------

    async def _preflight(self) -> None:
        """Resolve every image before any Job: a missing or refused image stops the task here;
        what could not be checked is a warning. The AIMD window starts at batchSize."""
        state, spec = self._state, self._input.spec
        state.registry_aware = True
        state.pacing = AimdWindow(ceiling=spec.batch_size)
        self._log("preflight: resolving images")
        result = await preflight.resolve(
            self._input.task_id, list(spec.images), list(spec.image_pull_secrets)
        )
        state.resolved_images = [r for r in result.images if r.error is None]
        state.warnings = list(result.warnings)
        stop = preflight.verdict(result)
        if stop is not None:
            raise _StopBeforeJobs(stop)

    def _listing_input(self) -> ListNodesInput:
        state, spec = self._state, self._input.spec
        if not state.registry_aware:
            return ListNodesInput(task_id=self._input.task_id, spec=spec)
        return ListNodesInput(
            task_id=self._input.task_id,
            spec=spec,
            resolved=state.resolved_images,
            pin_digests=spec.pin_digests,
        )

    def _pull_spec(self) -> PullSpec:
        pull, spec = PullSpec.of(self._input.spec), self._input.spec
        if self._state.registry_aware and spec.pin_digests:
            pull.images = preflight.pinned_images(pull.images, self._state.resolved_images)
        return pull

    # --- Units (a batch, or a rolling window) --------------------------------------------

    def _unit_size(self) -> int:
        spec = self._input.spec
        if spec.strategy == Strategy.ROLLING:
            return max(
                spec.batch_size,
                min(spec.batch_size * ROLLING_WINDOW_BATCHES, ROLLING_WINDOW_MAX_NODES),
            )
        return spec.batch_size

    async def _run_unit(self) -> None:
        state, spec = self._state, self._input.spec
        size = self._unit_size()
        nodes = state.pending[:size]
        batch_number = state.units_done + 1
        total = state.progress.total_batches
        self._current_batch, self._seen = batch_number, set()
        state.progress.current_batch = batch_number
        self._upsert_counters(force=True)
        in_flight = spec.batch_size if spec.strategy == Strategy.ROLLING else len(nodes)
        rounds = math.ceil(len(nodes) / in_flight)
        word = "window" if spec.strategy == Strategy.ROLLING else "batch"
        budget = batch_budget(rounds, spec.timeout_seconds, len(nodes))
        timeouts: dict[str, Any] = {
            "start_to_close_timeout": budget,
            "heartbeat_timeout": HEARTBEAT_TIMEOUT,
            "retry_policy": PREWARM_RETRY,
        }
        if workflow.patched(PATCH_RETRIES):
            timeouts.update(
                schedule_to_close_timeout=budget + PREWARM_RETRY_ALLOWANCE,
                heartbeat_timeout=PREWARM_HEARTBEAT_TIMEOUT,
                retry_policy=PREWARM_RETRY_BY_TIME,
            )
        self._handle = workflow.start_activity(
            ACTIVITY_PREWARM_NODES,
            PrewarmNodesInput(
                task_id=self._input.task_id,
                unit=batch_number,
                total_units=total,
                nodes=nodes,
                spec=self._pull_spec(),
                in_flight=in_flight,
                pacing=preflight.unit_window(spec, state),
            ),
            result_type=PrewarmNodesResult,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"{word} {batch_number}/{total}: {len(nodes)} nodes",
            **timeouts,
        )
        try:
            result = await self._handle
        except ActivityError as err:
            if self._stop_reason is not None and is_cancelled_exception(err):
                return
            raise
        finally:
            self._handle = None
        for outcome in result.outcomes:
            self._record(outcome)
        if result.pacing is not None and preflight.adaptive(spec, state):
            state.pacing = result.pacing
        now = workflow.now()
        for node in nodes:
            if node not in self._seen:  # defensive: the activity reports every node it was given
                self._record(failed(node, FailureReason.CONTAINER_FAILED, NO_OUTCOME, now))
        state.pending = state.pending[len(nodes) :]
        state.units_done = batch_number
        self._units_this_run += 1
        self._check_failure_ratio()
        self._upsert_counters(force=True)
        self._visibility.set_web_ui_details(self._input.spec, self._state)

    def _should_continue_as_new(self) -> bool:
        if self._units_this_run == 0:
            return False
        info = workflow.info()
        budget = self._state.units_per_run or DEFAULT_UNITS_PER_RUN
        return (
            self._units_this_run >= budget
            or info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= HISTORY_BUDGET
        )

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        state = self._state
        state.events_in_previous_runs += workflow.info().get_current_history_length()
        state.runs += 1
        self._log(f"continuing as new (run {state.runs}, {len(state.pending)} nodes to go)")
        workflow.continue_as_new(
            PrewarmInput(
                task_id=self._input.task_id,
                spec=spec_for_next_run(self._input.spec),
                created_at=self._input.created_at,
                state=state,
            )
        )

    # --- Clean-up ------------------------------------------------------------------------

    async def _cleanup(self) -> None:
        """Delete the task's Jobs and Pods; shielded, so a cancel cannot interrupt it."""
        task = asyncio.ensure_future(
            workflow.execute_activity(
                ACTIVITY_CLEANUP,
                CleanupInput(task_id=self._input.task_id),
                result_type=CleanupResult,
                start_to_close_timeout=CLEANUP_TIMEOUT,
                heartbeat_timeout=CLEANUP_HEARTBEAT_TIMEOUT,
                retry_policy=CLEANUP_RETRY,
                summary="delete the task's Jobs and Pods",
            )
        )
        while True:
            try:
                await asyncio.shield(task)
                return
            except asyncio.CancelledError:
                continue  # a cancel during clean-up changes nothing: finish the clean-up
            except ActivityError as err:
                workflow.logger.warning("clean-up failed: %s", failure_reason(err))
                return

    # --- State ---------------------------------------------------------------------------

    def _apply_selection(self, selection: NodeSelection) -> None:
        state, spec = self._state, self._input.spec
        state.listed = True
        state.pending = list(selection.targets)
        state.skipped_node_details = list(selection.skipped)
        progress = state.progress
        progress.total_nodes = len(selection.targets) + selection.warm + selection.missing_count
        progress.already_warm_nodes = selection.warm
        progress.skipped_nodes = selection.skipped_count or len(selection.skipped)
        progress.total_batches = math.ceil(len(selection.targets) / self._unit_size())
        now = workflow.now()
        self._current_batch = 0
        for group in selection.missing_groups:
            progress.failed_nodes += group.count
            self._failures.add_entry(missing_range(group, now))
        for name in selection.missing:
            self._record(failed(name, FailureReason.NODE_GONE, missing_node(name), now))
        _refresh_percentage(progress)
        self._upsert_counters(force=True)
        self._log(
            f"{selection.matched} nodes matched: {len(selection.targets)} to pull, "
            f"{selection.warm} already warm, "
            f"{progress.skipped_nodes} skipped, {selection.missing_count} missing"
        )
        if spec.follow is not None:
            # Follow mode starts watching where this listing was taken, and never returns the
            # nodes the sweep has; with no node yet, it waits for nodes instead of failing.
            state.follow_rv = selection.resource_version
            state.covered = list(selection.targets)
            return
        if selection.matched == 0 and not selection.missing_count:
            raise _Stop(no_match_message(spec))
        if progress.total_nodes == 0:
            raise _Stop(all_skipped_message(selection))
        self._check_failure_ratio()
        if self._stop_reason is not None:
            raise _Stop(self._stop_reason)

    def _record(self, outcome: NodeOutcome) -> None:
        if outcome.node_name in self._seen:
            return
        self._seen.add(outcome.node_name)
        progress = self._state.progress
        if outcome.ok:
            progress.completed_nodes += 1
        else:
            progress.failed_nodes += 1
            detail = outcome.failure or FailedNodeDetail(
                node_name=outcome.node_name,
                reason=FailureReason.CONTAINER_FAILED,
                timestamp=workflow.now(),
            )
            self._failures.add(detail)
        _refresh_percentage(progress)

    def _check_failure_ratio(self) -> None:
        progress, ratio = self._state.progress, self._input.spec.max_failure_ratio
        if self._stop_reason is not None or progress.total_nodes == 0:
            return
        share = progress.failed_nodes / progress.total_nodes
        if share > ratio:
            self._stop_reason = failure_ratio_message(progress, share, ratio)
            self._log(self._stop_reason)
            if self._handle is not None:
                self._handle.cancel()

    def _set_status(self, status: TaskStatus) -> None:
        self._state.status = status
        self._visibility.set_status(status)

    def _finish(self, status: TaskStatus, message: str | None) -> TaskView:
        state = self._state
        state.message = message
        state.finished_at = workflow.now()
        self._set_status(status)
        self._upsert_counters(force=True)
        self._visibility.set_web_ui_details(self._input.spec, self._state)
        self._log(f"finished {status.value}: {message or ''}")
        if not workflow.unsafe.is_replaying():
            # An in-memory counter, no command: replay-safe, counted by the worker that ends it.
            TASKS_FINISHED.labels(status.value).inc()
        return task_view(self._input, self._state)

    def _upsert_counters(self, *, force: bool) -> None:
        self._visibility.upsert_counters(self._state.progress, force=force)

    def _log(self, message: str) -> None:
        workflow.logger.info(message, extra={"taskId": self._input.task_id})


def _refresh_percentage(progress: Progress) -> None:
    progress.percentage = Progress.compute_percentage(
        progress.total_nodes,
        progress.completed_nodes,
        progress.failed_nodes,
        progress.already_warm_nodes,
    )
