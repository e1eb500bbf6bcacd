"""Metrics and logs of the real stack (sim, worker, API as processes) over a task of known outcome.

- /metrics counters move by exactly what the task did, node by node (tests/stack.py's scenario);
- no metric label anywhere (API, worker, Temporal SDK) carries a node, an image or a task ID;
- production logs are JSON lines, and every line about the task carries its `taskId`;
- an API token that is set and used (right and wrong) never reaches a log.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ips_client import TaskStatus, TaskView, Unauthorized, ValidationError

from common.models import FailureReason
from tests.stack import (
    KNOWN_OUTCOME,
    KNOWN_SCENARIO,
    NOT_FOUND_IMAGE,
    WARM_IMAGE,
    Samples,
    Stack,
    run_stack,
    sample,
)

pytestmark = pytest.mark.integration

TOKEN = f"ips-secret-{uuid.uuid4().hex}"
WRONG_TOKEN = f"ips-wrong-{uuid.uuid4().hex}"
NODE_RESULTS = ("completed", "failed", "skipped", "warm")
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def stack(dev_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # DEBUG everywhere: the token must stay out of the logs even at the chattiest level.
    with run_stack(
        dev_address, tmp_path_factory.mktemp("obs"), token=TOKEN, log_level="DEBUG"
    ) as s:
        yield s


@pytest.fixture(scope="module")
def known_task(stack: Stack) -> dict[str, Any]:
    """Run the known task once; return the metrics before and after, and its final view."""
    before = {w: stack.metrics(w) for w in ("api", "worker")}
    with stack.client() as ips:
        created = ips.create(
            images=[WARM_IMAGE, NOT_FOUND_IMAGE], batch_size=2, node_selector={"pool": "obs"}
        )
        final = ips.wait(created.task_id, timeout=120, poll_interval=0.5)
    after = {w: stack.metrics(w) for w in ("api", "worker")}
    return {"before": before, "after": after, "view": final}


def delta(task: dict[str, Any], which: str, name: str, **labels: str) -> float:
    after: Samples = task["after"][which]
    before: Samples = task["before"][which]
    return sample(after, name, **labels) - sample(before, name, **labels)


def test_the_known_task_ends_as_the_scenario_says(known_task: dict[str, Any]) -> None:
    view: TaskView = known_task["view"]
    p = view.progress
    assert view.status == TaskStatus.COMPLETED, view.message
    outcome = {
        "completed": p.completed_nodes,
        "failed": p.failed_nodes,
        "warm": p.already_warm_nodes,
        "skipped": p.skipped_nodes,
    }
    assert outcome == KNOWN_OUTCOME, view.failed_node_details
    assert {f.reason for f in view.failed_node_details} == {FailureReason.IMAGE_NOT_FOUND}


def test_node_counters_move_by_what_the_task_did(known_task: dict[str, Any]) -> None:
    for result in NODE_RESULTS:
        moved = delta(known_task, "worker", "ips_nodes_processed_total", result=result)
        assert moved == KNOWN_OUTCOME[result], result
    assert (
        delta(
            known_task,
            "worker",
            "ips_node_failures_total",
            reason=FailureReason.IMAGE_NOT_FOUND.value,
        )
        == KNOWN_OUTCOME["failed"]
    )
    # One Job per node that needed a pull; each such node's time is observed once.
    pulled = KNOWN_OUTCOME["completed"] + KNOWN_OUTCOME["failed"]
    assert delta(known_task, "worker", "ips_node_prewarm_seconds_count") == pulled
    assert delta(known_task, "worker", "ips_node_prewarm_seconds_sum") > 0
    created = sum(
        value - sample(known_task["before"]["worker"], "ips_k8s_requests_total", **dict(labels))
        for labels, value in known_task["after"]["worker"]["ips_k8s_requests_total"].items()
        if dict(labels)["verb"] == "create"
        and dict(labels)["resource"] == "jobs"
        and dict(labels)["code"].startswith("2")
    )
    assert created == pulled
    assert delta(known_task, "worker", "ips_k8s_rate_limited_total") == 0


def test_api_counts_the_start_and_times_requests_by_route_template(
    known_task: dict[str, Any],
) -> None:
    assert delta(known_task, "api", "ips_tasks_started_total") == 1
    post = {"method": "POST", "route": "/api/v1/tasks", "status": "201"}
    assert delta(known_task, "api", "ips_api_request_seconds_count", **post) == 1
    get = {"method": "GET", "route": "/api/v1/tasks/{task_id}", "status": "200"}
    assert delta(known_task, "api", "ips_api_request_seconds_count", **get) >= 1


def test_tasks_finished_is_counted_by_final_status(known_task: dict[str, Any]) -> None:
    after, before = known_task["after"], known_task["before"]
    # Counted by whichever process sees the end of a task: the worker.
    moved = sum(
        sample(after[w], "ips_tasks_finished_total", status="completed")
        - sample(before[w], "ips_tasks_finished_total", status="completed")
        for w in ("api", "worker")
    )
    if moved == 0:
        pytest.xfail(
            "ips_tasks_finished_total{status} is not incremented anywhere yet "
            "(proposed: the engine counts it where the workflow finishes, see docs/cli.md)"
        )
    assert moved == 1


def label_values(text: str) -> set[str]:
    return set(re.findall(r'="((?:[^"\\]|\\.)*)"', text))


def test_no_label_carries_a_node_an_image_or_a_task_id(
    stack: Stack, known_task: dict[str, Any]
) -> None:
    view: TaskView = known_task["view"]
    nodes = [
        f"{g['name']}-{i}" for g in KNOWN_SCENARIO["nodeGroups"] for i in range(1, g["count"] + 1)
    ]
    assert {f.node_name for f in view.failed_node_details} <= set(nodes)  # names as we expect
    forbidden = [*nodes, WARM_IMAGE, NOT_FOUND_IMAGE, "nginx", "not-found", view.task_id]
    for which in ("api", "worker", "temporal"):
        text = stack.metrics_text(which)
        values = label_values(text)
        assert values, f"{which} exposes no labelled metric at all"
        for bad in forbidden:
            hits = sorted(v for v in values if bad in v)
            assert not hits, f"{which} metric label carries {bad!r}: {hits}"
    worker = stack.metrics("worker")
    results = {dict(k)["result"] for k in worker.get("ips_nodes_processed_total", {})}
    assert results <= set(NODE_RESULTS)
    codes = {dict(k)["code"] for k in worker.get("ips_k8s_requests_total", {})}
    assert codes and all(re.fullmatch(r"\d{3}|error", c) for c in codes), codes
    reasons = {dict(k)["reason"] for k in worker.get("ips_node_failures_total", {})}
    assert reasons <= {r.value for r in FailureReason}
    api = stack.metrics("api")
    routes = {dict(k)["route"] for k in api.get("ips_api_request_seconds_count", {})}
    assert routes and all(r.startswith("/") and "task-" not in r for r in routes), routes


def test_worker_exposes_the_temporal_sdk_metrics(stack: Stack, known_task: dict[str, Any]) -> None:
    text = stack.metrics_text("temporal")
    assert "temporal_workflow_completed" in text or "workflow_completed" in text
    assert "PrewarmWorkflow" in text  # workflow_type is a bounded label


def test_logs_are_json_lines_and_task_lines_carry_the_task_id(
    stack: Stack, known_task: dict[str, Any]
) -> None:
    task_id = known_task["view"].task_id
    for which in ("api", "worker"):
        lines = stack.json_logs(which)  # raises on any line that is not one JSON object
        assert lines, f"{which} logged nothing"
        for line in lines:
            assert {"time", "level", "logger", "message"} <= line.keys(), line
            assert RFC3339_UTC.match(line["time"]), line["time"]
            assert "\x1b" not in json.dumps(line), line  # no terminal colour codes in JSON
            assert line.get("component") == which, line
            if task_id in json.dumps(line):
                assert line.get("taskId") == task_id, f"{which} line about the task: {line}"
        tagged = [ln for ln in lines if ln.get("taskId") == task_id]
        assert tagged, f"no {which} line carries taskId"
    worker_lines = [ln for ln in stack.json_logs("worker") if ln.get("taskId") == task_id]
    loggers = {ln["logger"] for ln in worker_lines}
    assert any(lg.startswith("activities") for lg in loggers), loggers
    assert "temporalio.workflow" in loggers, loggers  # the workflow logs via workflow.logger


def test_a_token_set_and_used_is_never_logged(
    stack: Stack, known_task: dict[str, Any], tmp_path: Path
) -> None:
    # Use it every way a client can: right, wrong, on errors, and through the CLI.
    with stack.client() as ips:
        ips.list()
        with pytest.raises(ValidationError):
            ips.create({"images": ["nginx"], "batchSize": 0})
    for header in (f"Bearer {WRONG_TOKEN}", WRONG_TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN}x"):
        answer = httpx.get(f"{stack.url}/api/v1/tasks", headers={"Authorization": header})
        assert answer.status_code == httpx.codes.UNAUTHORIZED
        assert TOKEN not in answer.text and WRONG_TOKEN not in answer.text
    with stack.client(token=WRONG_TOKEN) as bad, pytest.raises(Unauthorized) as info:
        bad.get(known_task["view"].task_id)
    assert WRONG_TOKEN not in str(info.value)
    cli = stack.ips("list")
    assert cli.returncode == 0, cli.stderr
    cli = stack.ips("get", "task-nope", IPS_TOKEN=WRONG_TOKEN)
    assert cli.returncode == 4 and WRONG_TOKEN not in cli.stdout + cli.stderr
    kube_token = "kubesim-dummy-token"  # the worker's Kubernetes bearer token (kubeconfig)
    assert kube_token in stack.kubeconfig.read_text()
    for which in ("api", "worker", "sim"):
        logs = stack.logs(which)
        assert logs.strip(), which
        for secret in (TOKEN, WRONG_TOKEN, kube_token):
            assert secret not in logs, f"{which} logged a token"
