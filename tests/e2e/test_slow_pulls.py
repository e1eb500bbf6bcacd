"""The slow-pulls scenario end to end, at time scale 1 (issue 12, "Measured").

`ips sim`, `ips worker` and `ips api` as processes (tests/stack.py) on kubesim's slow-pulls
scenario scaled to 50 nodes: pulls of about 90 s, the real controller timings, and its timeline
(compute-5 deleted at t=45 s mid-pull; compute-3 NotReady from t=60 s for 20 s). The worker sets
PRIORITY_CLASS_NAME, which does not exist, and the scenario checks it only for pods pinned to
the gpu pool; a webhook denies every image under registry.example.com/blocked/.

Every failed node has the right reason, the flap fails nothing, and the batch activity never
timed out on its heartbeat (the workflow history says so). About three minutes of wall clock.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from ips_client import FailureReason, TaskStatus, TaskView
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.jobspec import job_name
from tests.stack import Stack, run_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(720)]

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/ips-e2e/slow-pulls:1"
BLOCKED = "registry.example.com/blocked/tool:1"
PRIORITY_CLASS = "ips-prewarm"
GROUPS = {"compute": 30, "general": 15, "gpu": 5}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def scenario() -> dict[str, Any]:
    """The built-in slow-pulls scenario at 50 nodes; the task's image pulls in 90 s (median),
    with a narrow spread (sigma 0.2: 50 to 160 s) so that compute-5 and compute-3 are surely
    mid-pull when the timeline strikes, and the test stays a few minutes long."""
    data = yaml.safe_load((ROOT / "kubesim" / "scenarios" / "slow-pulls.yaml").read_text())
    for group in data["nodeGroups"]:
        group["count"] = GROUPS[group["name"]]
    data["images"].append({"name": IMAGE, "pullSeconds": {"median": 90, "sigma": 0.2}})
    return data


def pulls_of(stack: Stack, task_id: str, node: str, image: str) -> int:
    """How many times the kubelet started pulling `image` for the node's pod (Pulling events)."""
    response = httpx.get(f"{stack.sim_url}/api/v1/namespaces/default/events", timeout=30)
    response.raise_for_status()
    prefix = job_name(task_id, node) + "-"
    return sum(
        int(e.get("count") or 1)
        for e in response.json()["items"]
        if e.get("reason") == "Pulling"
        and (e.get("involvedObject") or {}).get("name", "").startswith(prefix)
        and f'"{image}"' in e.get("message", "")
    )


async def no_activity_timed_out(client: Client, task_id: str) -> list[int]:
    """Every activity attempt number in the history; asserts no activity ever timed out."""
    attempts = []
    async for event in client.get_workflow_handle(task_id).fetch_history_events():
        assert event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT, event
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attempts.append(event.activity_task_started_event_attributes.attempt)
    return attempts


async def test_slow_pulls_at_time_scale_1_every_reason_right(
    dev_address: str, dev_client: Client, tmp_path: Path
) -> None:
    with run_stack(
        dev_address,
        tmp_path,
        scenario=scenario(),
        time_scale=1.0,
        extra_env={"PRIORITY_CLASS_NAME": PRIORITY_CLASS},
    ) as stack:
        with stack.client() as ips:
            main = ips.create(images=[IMAGE], batch_size=50, tolerations=[GPU_TOLERATION])
            blocked = ips.create(
                images=[BLOCKED], batch_size=2, node_names=["general-1", "general-2"]
            )
            done: list[TaskView] = [
                await asyncio.to_thread(ips.wait, t.task_id, 600, poll_interval=2.0)
                for t in (main, blocked)
            ]
        view, refused = done
        compute3_pulls = pulls_of(stack, view.task_id, "compute-3", IMAGE)

    # All 50 nodes were listed before compute-5 went (t=45 s); it is the only node lost.
    p = view.progress
    assert view.status == TaskStatus.COMPLETED, view.message
    assert (p.total_nodes, p.completed_nodes, p.failed_nodes, p.skipped_nodes) == (50, 44, 6, 0), (
        view.failed_node_details
    )
    reasons = {d.node_name: d.reason for d in view.failed_node_details}
    gpu = {f"gpu-{i}" for i in range(1, 6)}
    assert reasons == {"compute-5": FailureReason.NODE_GONE} | dict.fromkeys(
        gpu, FailureReason.ADMISSION_DENIED
    )
    for d in view.failed_node_details:
        if d.node_name in gpu:
            assert f"no PriorityClass with name {PRIORITY_CLASS} was found" in d.message, d
    # compute-3 flapped NotReady for 20 s mid-pull: its kubelet pulled again, and it completed.
    assert compute3_pulls >= 2, "the flap did not cut compute-3's pull"
    assert "compute-3" not in reasons

    rp = refused.progress
    assert refused.status == TaskStatus.COMPLETED, refused.message
    assert (rp.total_nodes, rp.completed_nodes, rp.failed_nodes) == (2, 0, 2)
    for d in refused.failed_node_details:
        assert d.reason == FailureReason.ADMISSION_DENIED, d
        assert "registry-allowlist.example.com" in d.message, d
        assert "is not from an allowed registry" in d.message, d

    # No heartbeat timeout (no activity timeout at all), and no retried batch.
    for task_id in (view.task_id, refused.task_id):
        attempts = await no_activity_timed_out(dev_client, task_id)
        assert attempts and set(attempts) == {1}, attempts
