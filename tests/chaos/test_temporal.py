"""Chaos: the Temporal server restarts mid-task (a dev server on a SQLite file this test owns).

The worker and the API reconnect by themselves; the task finishes exactly, with no node pulled
twice and no Job left.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.harness import TemporalServer
from tests.chaos.chaoslib import (
    STACK_ENV,
    TIME_SCALE,
    Sim,
    assert_end_state,
    fresh_image,
    group,
    scenario,
    wait_final,
    wait_progress,
)
from tests.stack import run_stack

pytestmark = [pytest.mark.chaos, pytest.mark.integration]


def test_temporal_restarted_mid_task(temporal: TemporalServer, tmp_path: Path) -> None:
    with run_stack(
        temporal.address,
        tmp_path / "stack",
        scenario=scenario(group("temporal", 60)),
        time_scale=TIME_SCALE,
        extra_env=STACK_ENV,
    ) as stack:
        sim = Sim(stack.sim_url)
        image = fresh_image("temporal")
        with stack.client() as ips:
            task_id = ips.create(
                images=[image], batch_size=10, node_selector={"chaos": "temporal"}
            ).task_id
        wait_progress(stack, task_id, at_least=10)
        temporal.stop()
        time.sleep(2.0)  # Temporal is down: batches in flight keep pulling, outcomes wait
        assert stack.procs["worker"].alive() and stack.procs["api"].alive()
        temporal.start()
        task = wait_final(stack, task_id, timeout=180)
        assert_end_state(sim, task, image=image, completed=60)
