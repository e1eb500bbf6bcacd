"""PrewarmWorkflow with the registry preflight (issue 16), activities mocked by name, on the
time-skipping server: fail fast with no Job, warnings for what could not be checked, pinned
references, and the AIMD window from the batch activity to the view and the next unit."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from common.engine import EngineState
from common.models import Pacing, TaskSpec, TaskStatus, TaskView
from common.pacing import AimdWindow
from common.preflight import ACTIVITY_RESOLVE_IMAGES, PreflightError, ResolvedImage
from common.settings import Settings
from tests.waiting import async_wait_until
from tests.workflows.conftest import MockEngine, digest_of, resolved_image, selection, start
from worker.main import build_worker
from workflows.prewarm import PrewarmWorkflow

pytestmark = pytest.mark.integration  # the time-skipping server

GOOD, TYPO, DOWN = "r.example/team/app:1", "r.example/team/ap:1", "down.example/team/tool:2"


@pytest.fixture
async def env(skip_env: WorkflowEnvironment) -> AsyncIterator[WorkflowEnvironment]:
    yield skip_env


def answer(image: str) -> ResolvedImage:
    if image == TYPO:
        return ResolvedImage(
            image=image,
            error=PreflightError.NOT_FOUND,
            message=f"{image}: HTTP 404: MANIFEST_UNKNOWN: manifest unknown",
        )
    if image == DOWN:
        return ResolvedImage(
            image=image, error=PreflightError.UNREACHABLE, message="All connection attempts failed"
        )
    return resolved_image(image)


async def run(
    env: WorkflowEnvironment,
    mock: MockEngine,
    spec: TaskSpec,
    during: Callable[[WorkflowHandle[Any, TaskView]], Awaitable[None]] | None = None,
) -> tuple[TaskView, list[str]]:
    queue = f"registry-wf-{uuid.uuid4().hex[:8]}"
    worker = await build_worker(
        env.client, Settings(), task_queue=queue, activities=mock.activities()
    )
    async with worker:
        handle = await start(env.client, queue, spec)
        if during is not None:
            await during(handle)
        view = await handle.result()
        scheduled = [
            e.activity_task_scheduled_event_attributes.activity_type.name
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ]
    return view, scheduled


async def test_a_missing_image_fails_the_task_before_any_listing_or_job(
    env: WorkflowEnvironment,
) -> None:
    mock = MockEngine(selection=selection(10), resolve=answer)
    view, scheduled = await run(env, mock, TaskSpec(images=[GOOD, TYPO, DOWN], batch_size=5))
    assert view.status == TaskStatus.FAILED
    assert view.message == (
        "preflight refused 1 of 3 images, no Job was created: not found: "
        f"{TYPO}: HTTP 404: MANIFEST_UNKNOWN: manifest unknown"
    )
    assert scheduled == [ACTIVITY_RESOLVE_IMAGES]  # no listing, no batch, no clean-up
    assert mock.events == ["preflight"] and mock.calls == [] and mock.cleanups == []
    assert view.started_at is not None and view.finished_at is not None
    assert view.progress.total_nodes == 0
    # What could be checked is shown all the same.
    assert [r.image for r in view.resolved_images] == [GOOD]
    assert view.warnings == [f"preflight skipped for {DOWN}: All connection attempts failed"]


async def test_an_unreachable_registry_is_a_warning_and_its_image_keeps_its_tag(
    env: WorkflowEnvironment,
) -> None:
    mock = MockEngine(selection=selection(4), resolve=answer)
    view, scheduled = await run(env, mock, TaskSpec(images=[GOOD, DOWN], batch_size=4))
    assert view.status == TaskStatus.COMPLETED, view.message
    assert scheduled[:2] == [ACTIVITY_RESOLVE_IMAGES, "list_nodes"]
    assert view.warnings == [f"preflight skipped for {DOWN}: All connection attempts failed"]
    pinned = f"r.example/team/app@{digest_of(GOOD)}"
    assert mock.calls[0].spec.images == [pinned, DOWN]
    assert [(r.image, r.digest) for r in view.resolved_images] == [(GOOD, digest_of(GOOD))]
    # The listing got the answer (platform and disk checks, warm by digest).
    listing = mock.listings[0]
    assert [r.image for r in listing.resolved] == [GOOD] and listing.pin_digests


async def test_a_preflight_that_fails_outright_is_a_warning(env: WorkflowEnvironment) -> None:
    mock = MockEngine(
        selection=selection(3),
        preflight_error=ApplicationError("registry client crashed", non_retryable=True),
    )
    view, _ = await run(env, mock, TaskSpec(images=[GOOD], batch_size=3))
    assert view.status == TaskStatus.COMPLETED, view.message
    assert len(view.warnings) == 1
    assert view.warnings[0].startswith("preflight failed, pulling without it: ")
    assert "registry client crashed" in view.warnings[0]
    assert mock.calls[0].spec.images == [GOOD] and view.resolved_images == []


async def test_pin_digests_false_pulls_the_tags_and_still_shows_the_digests(
    env: WorkflowEnvironment,
) -> None:
    mock = MockEngine(selection=selection(2))
    view, _ = await run(env, mock, TaskSpec(images=[GOOD], batch_size=2, pin_digests=False))
    assert view.status == TaskStatus.COMPLETED
    assert mock.calls[0].spec.images == [GOOD]
    assert not mock.listings[0].pin_digests
    assert [r.digest for r in view.resolved_images] == [digest_of(GOOD)]


async def test_the_window_from_the_batch_reaches_the_view_and_the_next_unit(
    env: WorkflowEnvironment,
) -> None:
    halved = AimdWindow(ceiling=10, window=5, cooldown=10, decreases=1)
    mock = MockEngine(selection=selection(20), hold_unit=1, signal_first=2, unit_pacing={1: halved})

    async def during(handle: WorkflowHandle[Any, TaskView]) -> None:
        async def halved_in_view() -> bool:
            view = await handle.query("progress", result_type=TaskView)
            return view.progress.in_flight_window == 5

        await async_wait_until(halved_in_view, 10, message="the window never reached the view")
        mock.release.set()

    view, _ = await run(env, mock, TaskSpec(images=[GOOD], batch_size=10), during)
    assert view.status == TaskStatus.COMPLETED
    first, second = mock.calls
    assert first.pacing is not None and first.pacing.window == 10  # starts at batchSize
    assert second.pacing is not None and second.pacing.window == 5  # where unit 1 left it
    assert second.pacing.decreases == 1
    assert view.progress.in_flight_window == 5


async def test_fixed_pacing_passes_no_window_and_keeps_batch_size_in_flight(
    env: WorkflowEnvironment,
) -> None:
    """`pacing: fixed`: no unit gets a window (the activity keeps batchSize in flight whatever
    the registry answers), a window reported anyway moves nothing, and the run replays."""
    halved = AimdWindow(ceiling=10, window=5, cooldown=10, decreases=1)
    mock = MockEngine(selection=selection(20), hold_unit=1, signal_first=2, unit_pacing={1: halved})

    async def during(handle: WorkflowHandle[Any, TaskView]) -> None:
        async def signalled() -> bool:
            view = await handle.query("progress", result_type=TaskView)
            return view.progress.completed_nodes == 2

        await async_wait_until(signalled, 10, message="the first outcomes never arrived")
        view = await handle.query("progress", result_type=TaskView)
        assert view.progress.in_flight_window == 10 and view.pacing == Pacing.FIXED
        mock.release.set()

    spec = TaskSpec(images=[GOOD], batch_size=10, pacing=Pacing.FIXED)
    handles: list[WorkflowHandle[Any, TaskView]] = []

    async def keep(handle: WorkflowHandle[Any, TaskView]) -> None:
        handles.append(handle)
        await during(handle)

    view, scheduled = await run(env, mock, spec, keep)
    assert view.status == TaskStatus.COMPLETED, view.message
    assert len(mock.calls) == 2 and all(c.pacing is None for c in mock.calls)
    assert all(c.in_flight == 10 for c in mock.calls)
    assert view.progress.in_flight_window == 10 and view.pacing == Pacing.FIXED
    # The same commands as an adaptive task (only the batch input differs): no patch needed.
    assert scheduled == [ACTIVITY_RESOLVE_IMAGES, "list_nodes", "prewarm_nodes", "prewarm_nodes"]
    history = await handles[0].fetch_history()
    replayer = Replayer(workflows=[PrewarmWorkflow], data_converter=pydantic_data_converter)
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure


async def test_the_preflight_runs_once_and_its_answer_and_window_cross_continue_as_new(
    env: WorkflowEnvironment,
) -> None:
    halved = AimdWindow(ceiling=2, window=1, cooldown=2, decreases=1)
    mock = MockEngine(selection=selection(6), unit_pacing={1: halved})
    queue = f"registry-wf-{uuid.uuid4().hex[:8]}"
    worker = await build_worker(
        env.client, Settings(), task_queue=queue, activities=mock.activities()
    )
    async with worker:
        handle = await start(
            env.client,
            queue,
            TaskSpec(images=[GOOD], batch_size=2),
            state=EngineState(units_per_run=1),
        )
        view = await handle.result()
    assert view.status == TaskStatus.COMPLETED
    assert len(mock.preflights) == 1 and len(mock.listings) == 1  # not again in later runs
    pinned = f"r.example/team/app@{digest_of(GOOD)}"
    assert [c.spec.images for c in mock.calls] == [[pinned]] * 3
    assert [c.pacing.window if c.pacing else None for c in mock.calls] == [2, 1, 1]
    assert view.progress.in_flight_window == 1
    assert [r.image for r in view.resolved_images] == [GOOD]
    runs, run_id = 0, handle.first_execution_run_id
    while run_id:  # walk the chain of runs
        runs += 1
        history = await env.client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        last = history.events[-1].workflow_execution_continued_as_new_event_attributes
        run_id = last.new_execution_run_id
    assert runs == 3  # one run per unit: the state crossed continue-as-new twice
