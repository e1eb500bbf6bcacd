"""Follow mode, the workflow's side: after the first sweep, prewarm the nodes that join.

The task loops over *rounds*. Each round is one `watch_nodes` activity (activities/follow.py):
one node watch from the resourceVersion in the workflow's state, which returns up to
`batchSize` newly eligible nodes (gathered for GATHER_SECONDS after the first) and the
resourceVersion to resume from. The workflow records that resourceVersion, adds the nodes to
the task (`totalNodes`, `following.nodesAdded`, one more batch) and prewarms them with the
ordinary batch activity, then starts the next round. A round with nothing to report ends after
ROUND_SECONDS (or at the end of the follow), so a quiet day is a few events an hour.

What survives a restart is in `EngineState`: the resourceVersion (`follow_rv`) and the nodes
the task already has (`covered`). A worker that dies mid-round is replaced by the activity's
retry (heartbeat timeout), which resumes from its last heartbeat or the state's
resourceVersion; a Temporal restart replays the workflow to the same point. A node that joined
meanwhile is in the watch's history after that resourceVersion, or, once the history is
compacted (410 Gone), found by the relist.

History stays bounded: rounds count like batches toward continue-as-new
(`_should_continue_as_new`), which carries the state (resourceVersion, counters, `covered`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from common.engine import (
        ACTIVITY_WATCH_NODES,
        EngineState,
        PrewarmInput,
        PullSpec,
        WatchNodesInput,
        WatchNodesResult,
    )
    from common.models import Progress
    from workflows.visibility import Visibility

if TYPE_CHECKING:
    from common.models import TaskSpec

PATCH_FOLLOW = "follow-mode"  # issue 15: the follow phase after the first sweep
GATHER_SECONDS = 3.0
ROUND_SECONDS = 15 * 60
# The watch round heartbeats every second from its own task (activities/follow.py).
WATCH_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
WATCH_SLACK = timedelta(minutes=2)  # beyond the round's own end: the last watch request's close
WATCH_RETRY = RetryPolicy(
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

    async def _run_unit(self) -> None: ...

    def _should_continue_as_new(self) -> bool: ...

    async def _continue_as_new(self) -> None: ...

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
    """The follow phase: watch rounds and joined batches, until the end or a stop."""
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
        seconds = float(ROUND_SECONDS)
        if end is not None:
            seconds = max(1.0, min(seconds, (end - now).total_seconds()))
        result = await workflow.execute_activity(
            ACTIVITY_WATCH_NODES,
            WatchNodesInput(
                task_id=host._input.task_id,
                node_selector=dict(spec.node_selector),
                spec=PullSpec.of(spec),
                resource_version=state.follow_rv,
                covered=list(state.covered),
                max_nodes=spec.batch_size,
                gather_seconds=GATHER_SECONDS,
                max_seconds=seconds,
                resolved=list(state.resolved_images) if state.registry_aware else [],
                pin_digests=state.registry_aware and spec.pin_digests,
            ),
            result_type=WatchNodesResult,
            start_to_close_timeout=timedelta(seconds=seconds) + WATCH_SLACK,
            heartbeat_timeout=WATCH_HEARTBEAT_TIMEOUT,
            retry_policy=WATCH_RETRY,
            summary=f"watch nodes (round {state.follow_rounds + 1})",
        )
        record_round(host, result)
        if state.pending:
            await host._run_unit()


def record_round(host: FollowHost, result: WatchNodesResult) -> None:
    """Take a round's result into the state; the new nodes become the next batch."""
    state = host._state
    state.follow_rv = result.resource_version
    state.follow_rounds += 1
    host._units_this_run += 1
    if result.gone:
        gone = set(result.gone)
        state.covered = [n for n in state.covered if n not in gone]
    covered = set(state.covered)
    new = [n for n in result.nodes if n not in covered]
    if not new:
        return
    state.covered.extend(new)
    state.nodes_added += len(new)
    state.pending = new
    progress = state.progress
    progress.total_nodes += len(new)
    progress.total_batches += 1
    progress.percentage = Progress.compute_percentage(
        progress.total_nodes,
        progress.completed_nodes,
        progress.failed_nodes,
        progress.already_warm_nodes,
    )
    host._log(f"{len(new)} nodes joined: batch {progress.total_batches}")
    host._upsert_counters(force=True)
    host._visibility.set_web_ui_details(host._input.spec, state)
