"""Follow mode, the workflow's side: after the first sweep, prewarm the nodes that join.

The follow phase is a loop of *units*. A unit is one long-lived `follow_nodes` activity
(activities/follow.py): it watches the nodes from the resourceVersion in the workflow's state
and prewarms each newly eligible node at once (at most batchSize Jobs unfinished), signalling
the nodes it takes (`joined`) and their outcomes with the batch's outcome signal, so
`totalNodes`, `following.nodesAdded` and the counters move live. A unit stops taking nodes
after UNIT_SECONDS (or at the end of the follow) or UNIT_NODES nodes, finishes its Jobs, and
returns the resourceVersion the next unit resumes from and the covered nodes seen deleted.

What survives a restart is in `EngineState`: the resourceVersion (`follow_rv`) and the nodes
the task already has (`covered`). A worker that dies mid-unit is replaced by the activity's
retry (heartbeat timeout), which resumes from its last heartbeat (the resourceVersion and the
nodes taken, whose Jobs it adopts) or from the state; a Temporal restart replays the workflow
to the same point. A node that joined meanwhile is in the watch's history after that
resourceVersion, or, once the history is compacted (410 Gone), found by the relist.

History stays bounded: a unit counts like a batch toward continue-as-new
(`_should_continue_as_new`), which carries the state (resourceVersion, counters, `covered`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from common.engine import (
        ACTIVITY_FOLLOW_NODES,
        EngineState,
        FollowNodesInput,
        FollowNodesResult,
        NodeOutcome,
        PrewarmInput,
        PullSpec,
    )
    from common.models import FailureReason, Progress
    from workflows.failurelog import NO_OUTCOME, failed
    from workflows.preflight import adaptive, unit_window
    from workflows.timeouts import batch_budget
    from workflows.visibility import Visibility

if TYPE_CHECKING:
    from common.models import TaskSpec

PATCH_FOLLOW = "follow-mode"  # issue 15: the follow phase after the first sweep
UNIT_SECONDS = 15 * 60  # a unit stops taking nodes after this long ...
UNIT_NODES = 100  # ... or this many nodes: history and heartbeat details stay bounded
# The unit heartbeats every second from its own task (activities/outcomes.py).
FOLLOW_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
FOLLOW_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,  # unlimited: a worker restart or an API outage never ends the follow
)


class FollowHost(Protocol):
    """What follow mode needs of PrewarmWorkflow."""

    _input: PrewarmInput
    _state: EngineState
    _stop_reason: str | None
    _units_this_run: int
    _current_batch: int
    _seen: set[str]
    _handle: workflow.ActivityHandle[Any] | None

    def _should_continue_as_new(self) -> bool: ...

    async def _continue_as_new(self) -> None: ...

    def _pull_spec(self) -> PullSpec: ...

    def _record(self, outcome: NodeOutcome) -> None: ...

    def _check_failure_ratio(self) -> None: ...

    def _upsert_counters(self, *, force: bool) -> None: ...

    @property
    def _visibility(self) -> Visibility: ...

    def _log(self, message: str) -> None: ...


def follow_end(spec: TaskSpec, state: EngineState) -> datetime | None:
    """When following stops: `since` + durationSeconds, or never (until cancelled)."""
    if spec.follow is None or state.following_since is None:
        return None
    if spec.follow.duration_seconds is None:
        return None
    return state.following_since + timedelta(seconds=spec.follow.duration_seconds)


async def follow(host: FollowHost) -> None:
    """The follow phase: one unit after another, until the end or a stop."""
    state, spec = host._state, host._input.spec
    if state.following_since is None:
        state.following_since = workflow.now()
        end = follow_end(spec, state)
        host._log(f"following nodes that join, until {end.isoformat() if end else 'cancelled'}")
    host._visibility.set_web_ui_details(spec, state)
    end = follow_end(spec, state)
    while host._stop_reason is None:
        now = workflow.now()
        if end is not None and now >= end:
            return
        if host._should_continue_as_new():
            await host._continue_as_new()
        until = now + timedelta(seconds=UNIT_SECONDS)
        if end is not None:
            until = min(until, end)
        result = await _run_unit(host, until)
        if result is None:
            return
        record_unit(host, result)


async def _run_unit(host: FollowHost, until: datetime) -> FollowNodesResult | None:
    state, spec = host._state, host._input.spec
    unit = state.units_done + 1
    host._current_batch, host._seen = unit, set()
    drain = batch_budget(math.ceil(UNIT_NODES / spec.batch_size), spec.timeout_seconds, UNIT_NODES)
    host._handle = workflow.start_activity(
        ACTIVITY_FOLLOW_NODES,
        FollowNodesInput(
            task_id=host._input.task_id,
            unit=unit,
            node_selector=dict(spec.node_selector),
            spec=PullSpec.of(spec),
            pull=host._pull_spec(),
            resource_version=state.follow_rv,
            covered=list(state.covered),
            in_flight=spec.batch_size,
            max_nodes=UNIT_NODES,
            until=until,
            pacing=unit_window(spec, state),
            resolved=list(state.resolved_images) if state.registry_aware else [],
            pin_digests=state.registry_aware and spec.pin_digests,
        ),
        result_type=FollowNodesResult,
        start_to_close_timeout=(until - workflow.now()) + drain,
        heartbeat_timeout=FOLLOW_HEARTBEAT_TIMEOUT,
        retry_policy=FOLLOW_RETRY,
        cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        summary=f"follow nodes (unit {state.follow_rounds + 1})",
    )
    handle = host._handle
    try:
        # Not `await handle`: a cancel that arrives as the unit completes would be swallowed
        # (the SDK returns the result of an activity that completed while being cancelled).
        try:
            await workflow.wait_condition(handle.done)
        except asyncio.CancelledError:
            handle.cancel()  # DELETE: wait for the unit to stop, then clean up (run())
            with contextlib.suppress(ActivityError, asyncio.CancelledError):
                await handle
            raise
        return await handle
    except ActivityError as err:
        if host._stop_reason is not None and is_cancelled_exception(err):
            return None  # the failure ratio stopped the task
        raise
    finally:
        host._handle = None


def add_joined(host: FollowHost, unit: int, nodes: list[str]) -> None:
    """Nodes a unit took (signalled live, and again in its result): the task has them now."""
    state = host._state
    covered = set(state.covered)
    new = [n for n in dict.fromkeys(nodes) if n not in covered]
    if not new:
        return
    state.covered.extend(new)
    state.nodes_added += len(new)
    progress = state.progress
    progress.total_nodes += len(new)
    progress.current_batch = unit
    progress.total_batches = max(progress.total_batches, unit)
    _refresh(progress)
    host._log(f"{len(new)} nodes joined (unit {unit})")


def record_unit(host: FollowHost, result: FollowNodesResult) -> None:
    """Take a unit's result into the state."""
    state = host._state
    state.follow_rv = result.resource_version
    state.follow_rounds += 1
    host._units_this_run += 1
    add_joined(host, result.unit, result.joined)
    for outcome in result.outcomes:
        host._record(outcome)
    now = workflow.now()
    for node in result.joined:
        if node not in host._seen:  # defensive: the activity reports every node it took
            host._record(failed(node, FailureReason.CONTAINER_FAILED, NO_OUTCOME, now))
    if result.pacing is not None and adaptive(host._input.spec, state):
        state.pacing = result.pacing
    if result.joined:
        state.units_done = result.unit
    if result.gone:
        gone = set(result.gone)
        state.covered = [n for n in state.covered if n not in gone]
    host._check_failure_ratio()
    host._upsert_counters(force=True)
    host._visibility.set_web_ui_details(host._input.spec, state)


def _refresh(progress: Progress) -> None:
    progress.percentage = Progress.compute_percentage(
        progress.total_nodes,
        progress.completed_nodes,
        progress.failed_nodes,
        progress.already_warm_nodes,
    )
