"""Every committed history (tests/workflows/histories, from real runs) replays on today's code.

A failure here means a change to PrewarmWorkflow (or to ScheduleLauncherWorkflow, whose
launcher-run1.json comes from `python -m tests.workflows.make_launcher_history`; follow-runN.json,
a follow-mode task, from `python -m tests.workflows.make_follow_history`) is not
deterministic for in-flight tasks: gate
it with workflow.patched(), then regenerate with `python -m tests.workflows.make_history`.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.launcher import ScheduleLauncherWorkflow
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
    # Issue 16: the registry preflight, pinned digests and the AIMD window (patch preflight-v1);
    # registry-pinned and preflight-typo ran against a real registry (make_history v3).
    v3 = {
        "batch-can-v3-run1.json",
        "batch-can-v3-run2.json",
        "rolling-cancel-v3-run1.json",
        "registry-pinned-v3-run1.json",
        "preflight-typo-v3-run1.json",
    }
    assert v3 <= names
    assert all(
        "preflight-v1" in _patches(HISTORIES[0].parent / n) for n in v3 if n.endswith("run1.json")
    )
    typo = json.loads((HISTORIES[0].parent / "preflight-typo-v3-run1.json").read_text())
    scheduled = [
        e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
        for e in typo["events"]
        if "activityTaskScheduledEventAttributes" in e
    ]
    assert scheduled == ["resolve_images"]  # stopped before any listing, Job or clean-up
    assert "launcher-run1.json" in names  # ScheduleLauncherWorkflow (make_launcher_history)
    # Issue 15: the child's task ID from the launcher's workflow ID and run ID, patched.
    assert "launcher-v2-run1.json" in names
    assert "core_patch" in (HISTORIES[0].parent / "launcher-v2-run1.json").read_text()

    # Issue 15: a follow-mode task (make_follow_history), with continue-as-new, gated.
    # The sweep continues as new after 3 batches; run 2 is the follow phase: its units.
    follow = {"follow-run1.json", "follow-run2.json"}
    assert follow <= names
    run2 = (HISTORIES[0].parent / "follow-run2.json").read_text()
    assert "core_patch" in run2 and "follow_nodes" in run2


def test_the_launchers_child_id_holds_its_run_id() -> None:
    """Two triggers in one second make two launcher runs of one workflow ID; the child's task
    ID must tell them apart (issue 15), so it comes from the workflow ID and the run ID."""
    from datetime import datetime

    from workflows.launcher import launcher_task_id

    events = json.loads((HISTORIES[0].parent / "launcher-v2-run1.json").read_text())["events"]
    started = events[0]["workflowExecutionStartedEventAttributes"]
    task_started = next(e for e in events if e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_STARTED")
    now = datetime.fromisoformat(task_started["eventTime"][:19] + "+00:00")
    (child,) = [
        e["startChildWorkflowExecutionInitiatedEventAttributes"]["workflowId"]
        for e in events
        if "startChildWorkflowExecutionInitiatedEventAttributes" in e
    ]
    wf_id, run_id = started["workflowId"], started["originalExecutionRunId"]
    assert child == launcher_task_id(wf_id, now, run_id)
    assert child != launcher_task_id(wf_id, now)  # what the launcher did before the patch


def _patches(path: Path) -> set[str]:
    """The patch IDs a history's markers record (their payloads are base64 JSON)."""
    found = set()
    for event in json.loads(path.read_text())["events"]:
        marker = event.get("markerRecordedEventAttributes")
        if not marker or marker.get("markerName") != "core_patch":
            continue
        for payload in marker["details"]["patch-data"]["payloads"]:
            found.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return found


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replay(path: Path) -> None:
    text = await asyncio.to_thread(path.read_text)
    # The launcher derives its child's task ID from its workflow ID: replay under the real one
    # (recorded in the started event by current servers; the file name otherwise).
    started = json.loads(text)["events"][0]["workflowExecutionStartedEventAttributes"]
    history = WorkflowHistory.from_json(started.get("workflowId", path.stem), text)
    replayer = Replayer(
        workflows=[PrewarmWorkflow, ScheduleLauncherWorkflow],
        data_converter=pydantic_data_converter,
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
