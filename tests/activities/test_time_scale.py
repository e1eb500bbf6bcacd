"""ENGINE_TIME_SCALE (benchmarks and tests only): the engine's own timers run N times faster,
to match a kubesim started with the same --time-scale."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from activities import batch as batch_mod
from common.models import FailureReason
from common.settings import Settings
from tests.activities.fakekube import node_obj
from tests.activities.test_batch import NODES, Harness, _pending_pod, running

pytestmark = pytest.mark.unit


def test_engine_seconds_divides_by_the_scale() -> None:
    assert Settings(metrics_port=0).engine_seconds(60) == 60
    assert Settings(metrics_port=0, engine_time_scale=10).engine_seconds(60) == 6


@pytest.mark.parametrize(("scale", "fails"), [(1.0, False), (10.0, True)])
async def test_the_not_ready_grace_is_scaled(scale: float, fails: bool) -> None:
    """NotReady for 10 wall seconds, grace 60 s: within the grace at scale 1, past the scaled
    grace (6 s) at scale 10."""
    h = Harness(NODES[:1], grace=60)
    h.settings.engine_time_scale = scale
    h.kube.nodes[NODES[0]] = node_obj(
        NODES[0], ready=False, since=datetime.now(UTC) - timedelta(seconds=10)
    )
    async with running(h):
        await h.kube.until(lambda: len(h.kube.jobs) == 1)
        await h.kube.emit("pods", "ADDED", _pending_pod(h, NODES[0]))
        if fails:
            failed = await h.kube.until(lambda: h.outcome(NODES[0]))
            assert failed.failure is not None
            assert failed.failure.reason == FailureReason.NODE_NOT_READY
        else:
            await h.kube.until(lambda: h.run.pods.get(NODES[0]))
            await asyncio.sleep(2 * batch_mod.TICK)  # ticks re-check it: within the grace
            assert h.outcome(NODES[0]) is None
