"""Engine test helpers: activities mocked by name, and a way to start PrewarmWorkflow."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from common.engine import (
    ACTIVITY_CLEANUP,
    ACTIVITY_LIST_NODES,
    ACTIVITY_PREWARM_NODES,
    SIGNAL_NODE_OUTCOMES,
    CleanupInput,
    CleanupResult,
    ListNodesInput,
    NodeOutcome,
    NodeOutcomes,
    NodeSelection,
    PrewarmInput,
    PrewarmNodesInput,
    PrewarmNodesResult,
)
from common.models import FailedNodeDetail, FailureReason, SkippedNodeDetail, TaskSpec, TaskView
from common.pacing import AimdWindow
from common.preflight import (
    ACTIVITY_RESOLVE_IMAGES,
    ImagePlatform,
    PreflightError,
    ResolvedImage,
    ResolveImagesInput,
    ResolveImagesResult,
)
from common.starting import start_prewarm_workflow
from common.temporal import SearchAttr


@pytest.fixture(scope="session")
async def skip_env(time_env: WorkflowEnvironment) -> WorkflowEnvironment:
    """The time-skipping server, with our search attributes added (it has no List for them)."""
    await time_env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=time_env.client.namespace,
            search_attributes={a.value: a.indexed_type for a in SearchAttr},
        )
    )
    return time_env


@pytest.fixture
async def env(skip_env: WorkflowEnvironment) -> WorkflowEnvironment:
    """The workflow tests' environment: the time-skipping server."""
    return skip_env


def node_names(n: int) -> list[str]:
    return [f"node-{i:03d}" for i in range(n)]


def task_id() -> str:
    return f"task-20260101-000000-{uuid.uuid4().hex[:8]}"


def failure(node: str, reason: FailureReason = FailureReason.IMAGE_NOT_FOUND) -> NodeOutcome:
    return NodeOutcome(
        node_name=node,
        ok=False,
        failure=FailedNodeDetail(
            node_name=node,
            image="nginx:nope",
            reason=reason,
            message="rpc error: code = NotFound desc = not found",
            timestamp=datetime.now(UTC),
        ),
    )


@dataclass
class MockEngine:
    """Activities registered under the real names; behaviour set per test.

    `outcome(node)` decides each node (default: success). `hold` (when set) makes the batch
    activity signal its first `signal_first` outcomes, then wait for `release` while
    heartbeating, so a test can query or cancel mid-batch.
    """

    selection: NodeSelection
    outcome: Callable[[str], NodeOutcome] = lambda n: NodeOutcome(node_name=n, ok=True)
    hold_unit: int | None = None
    signal_first: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    hold_listing: bool = False
    hold_cleanup: bool = False
    die_unit: int | None = None  # this unit's activity goes silent, as on a dead worker
    list_error: Exception | None = None
    # The preflight's answer per image (default: resolved, linux/amd64 + arm64); raising
    # `preflight_error` makes the activity fail outright.
    resolve: Callable[[str], ResolvedImage] = field(default_factory=lambda: resolved_image)
    preflight_error: Exception | None = None
    preflights: list[ResolveImagesInput] = field(default_factory=list)
    listings: list[ListNodesInput] = field(default_factory=list)
    # The AIMD window a unit's activity reports (signalled with its first outcomes, and in its
    # result); other units return the window they were given.
    unit_pacing: dict[int, AimdWindow] = field(default_factory=dict)
    calls: list[PrewarmNodesInput] = field(default_factory=list)
    cancelled_units: list[int] = field(default_factory=list)
    cleanups: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    async def _wait_release(self) -> None:
        self.holding.set()
        while not self.release.is_set():
            activity.heartbeat()
            try:
                await asyncio.wait_for(self.release.wait(), 0.2)
            except TimeoutError:
                pass

    def activities(self) -> list[Any]:
        @activity.defn(name=ACTIVITY_RESOLVE_IMAGES)
        async def resolve_images(inp: ResolveImagesInput) -> ResolveImagesResult:
            self.events.append("preflight")
            self.preflights.append(inp)
            if self.preflight_error is not None:
                raise self.preflight_error
            images = [self.resolve(i) for i in inp.images]
            return ResolveImagesResult(
                images=images,
                warnings=[  # as the real activity: only the unreachable ones
                    f"preflight skipped for {i.image}: {i.message}"
                    for i in images
                    if i.error == PreflightError.UNREACHABLE
                ],
            )

        @activity.defn(name=ACTIVITY_LIST_NODES)
        async def list_nodes(inp: ListNodesInput) -> NodeSelection:
            self.events.append("list")
            self.listings.append(inp)
            if self.hold_listing:
                await self._wait_release()
            if self.list_error is not None:
                raise self.list_error
            return self.selection

        @activity.defn(name=ACTIVITY_PREWARM_NODES)
        async def prewarm_nodes(inp: PrewarmNodesInput) -> PrewarmNodesResult:
            self.calls.append(inp)
            self.events.append(f"unit-{inp.unit}")
            outcomes = [self.outcome(n) for n in inp.nodes]
            if inp.unit == self.die_unit:
                activity.heartbeat()
                self.holding.set()
                await asyncio.sleep(3600)  # no heartbeat, never sees the cancel
            if inp.unit == self.hold_unit:
                first = outcomes[: self.signal_first]
                if first:
                    handle = activity.client().get_workflow_handle(inp.task_id)
                    await handle.signal(
                        SIGNAL_NODE_OUTCOMES,
                        NodeOutcomes(
                            unit=inp.unit, outcomes=first, pacing=self.unit_pacing.get(inp.unit)
                        ),
                    )
                try:
                    await self._wait_release()
                except asyncio.CancelledError:
                    self.cancelled_units.append(inp.unit)
                    self.events.append(f"unit-{inp.unit}-cancelled")
                    raise
            pacing = self.unit_pacing.get(inp.unit, inp.pacing)
            return PrewarmNodesResult(unit=inp.unit, outcomes=outcomes, pacing=pacing)

        @activity.defn(name=ACTIVITY_CLEANUP)
        async def cleanup_task(inp: CleanupInput) -> CleanupResult:
            self.events.append("cleanup")
            if self.hold_cleanup:
                await self._wait_release()
            self.cleanups.append(inp.task_id)
            return CleanupResult()

        return [resolve_images, list_nodes, prewarm_nodes, cleanup_task]


def digest_of(image: str) -> str:
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


def resolved_image(image: str) -> ResolvedImage:
    """What the mocked preflight answers by default: a two-platform index."""
    return ResolvedImage(
        image=image,
        digest=digest_of(image),
        platforms=[
            ImagePlatform(os="linux", architecture=a, digest=digest_of(image + a),
                          compressed_size=10_000_000)
            for a in ("amd64", "arm64")
        ],
    )  # fmt: skip


def selection(
    n: int, *, warm: int = 0, skipped: list[SkippedNodeDetail] | None = None
) -> NodeSelection:
    skipped = skipped or []
    return NodeSelection(
        matched=n + warm + len(skipped), targets=node_names(n), warm=warm, skipped=skipped
    )


async def start(
    client: Client,
    queue: str,
    spec: TaskSpec,
    *,
    tid: str | None = None,
    state: Any = None,
) -> WorkflowHandle[Any, TaskView]:
    tid = tid or task_id()
    return await start_prewarm_workflow(
        client,
        queue,
        PrewarmInput(task_id=tid, spec=spec, created_at=datetime.now(UTC), state=state),
    )
