"""Every committed history (tests/engine/histories, from real runs) replays on today's code.

A failure here means a change to PrewarmWorkflow is not deterministic for in-flight tasks: gate
it with workflow.patched(), then regenerate with `python -m tests.engine.make_history`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.prewarm import PrewarmWorkflow

pytestmark = pytest.mark.unit

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_committed() -> None:
    names = {p.name for p in HISTORIES}
    assert {"batch-can-run1.json", "batch-can-run2.json", "rolling-cancel-run1.json"} <= names
    # Issue 12: the batch activity bounded by time, with its patch marker.
    v2 = {"batch-can-v2-run1.json", "batch-can-v2-run2.json", "rolling-cancel-v2-run1.json"}
    assert v2 <= names
    assert all("core_patch" in (HISTORIES[0].parent / n).read_text() for n in v2)


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replay(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, await asyncio.to_thread(path.read_text))
    replayer = Replayer(workflows=[PrewarmWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
