"""The real engine on kubesim: admission refusals fail in seconds (`AdmissionDenied`, with the
API server's message), and a brief NotReady flap fails nothing while a long one fails
`NodeNotReady` (issue 12, items 3 and 4, until now proven only against a fake Kubernetes in
tests/activities/test_batch.py).

kubesim runs at time scale 20 and the engine's own timers too (ENGINE_TIME_SCALE): the grace
of 120 s is 6 s of wall clock, a 20 s flap 1 s.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.jobspec import job_name, task_selector
from common.models import FailureReason, TaskSpec, TaskStatus, TaskView
from kubesim.testing import SimHandle
from tests.e2e.testlib import engine as e2e_engine
from tests.e2e.testlib import sim_fixture, start_task, until

pytestmark = pytest.mark.integration

SCALE = 20.0
HELPER = "busybox:1.37.0-musl"
APP = "registry.example.com/ips-test/admitted:1"
BLOCKED = "registry.example.com/blocked/tool:1"
SLOW = "registry.example.com/ips-test/slow:1"  # 300 simulated seconds: 15 s of wall clock
PRIORITY_CLASS = "ips-prewarm"
SCENARIO: dict[str, Any] = {
    "defaults": {"pullOverheadSeconds": 0.0, "pullJitter": 0.0, "containerRunSeconds": 0.0},
    "nodeGroups": [
        {"name": "plain", "count": 2, "labels": {"pool": "plain"}, "images": [{"name": HELPER}]},
        {"name": "gpu", "count": 2, "labels": {"pool": "gpu"}, "images": [{"name": HELPER}]},
        {"name": "flap", "count": 3, "labels": {"pool": "flap"}, "images": [{"name": HELPER}]},
    ],
    "images": [
        {"name": HELPER, "size": "1MiB"},
        {"name": APP, "pullSeconds": 2},
        {"name": BLOCKED, "pullSeconds": 2},
        {"name": SLOW, "pullSeconds": 300},
    ],
    "admission": {
        "priorityClasses": [],
        "priorityNodeGroups": ["gpu"],
        "webhooks": [
            {
                "name": "registry-allowlist.example.com",
                "deniedImagePrefixes": ["registry.example.com/blocked/"],
                "message": "image {image} is not from an allowed registry",
            }
        ],
    },
}


sim = sim_fixture(scenario=SCENARIO, time_scale=SCALE, seed=12)
# The engine's timers scaled as kubesim's; pods need a PriorityClass the gpu pool lacks.
engine = partial(
    e2e_engine,
    unschedulable_grace_seconds=120,
    engine_time_scale=SCALE,
    priority_class_name=PRIORITY_CLASS,
)


def pulls_started(sim: SimHandle, tid: str, node: str) -> int:
    """The kubelet's Pulling events for SLOW on the node's pod (each start of a pull)."""
    prefix = job_name(tid, node) + "-"
    return sum(
        int(e.get("count") or 1)
        for e in sim.objects("events", "default")
        if e["reason"] == "Pulling"
        and e["involvedObject"]["name"].startswith(prefix)
        and f'"{SLOW}"' in e.get("message", "")
    )


async def test_admission_refusals_fail_in_seconds_with_the_servers_message(
    dev_env: WorkflowEnvironment, sim: SimHandle
) -> None:
    """No PriorityClass for pods pinned to the gpu pool, and a webhook denying a registry:
    each refused node fails AdmissionDenied at once (without the refusal watch it would wait
    for its Job's deadline and fail Timeout)."""
    async with engine(dev_env, sim) as queue:
        pools = await start_task(
            dev_env.client,
            queue,
            TaskSpec(
                images=[APP], batch_size=4, node_names=["gpu-1", "gpu-2", "plain-1", "plain-2"]
            ),
        )
        blocked = await start_task(
            dev_env.client,
            queue,
            TaskSpec(images=[BLOCKED], batch_size=2, node_names=["plain-1", "plain-2"]),
        )
        view: TaskView = await pools.result()
        refused: TaskView = await blocked.result()
    assert view.status == TaskStatus.COMPLETED, view.message
    assert (view.progress.completed_nodes, view.progress.failed_nodes) == (2, 2)
    assert {d.node_name: d.reason for d in view.failed_node_details} == {
        "gpu-1": FailureReason.ADMISSION_DENIED,
        "gpu-2": FailureReason.ADMISSION_DENIED,
    }
    for d in view.failed_node_details:
        assert f"no PriorityClass with name {PRIORITY_CLASS} was found" in d.message, d
    assert (refused.progress.completed_nodes, refused.progress.failed_nodes) == (0, 2)
    for d in refused.failed_node_details:
        assert d.reason == FailureReason.ADMISSION_DENIED, d
        assert 'admission webhook "registry-allowlist.example.com"' in d.message, d
        assert f"image {BLOCKED} is not from an allowed registry" in d.message, d
    # No pod was ever made for a refused node, and every refused Job is gone.
    for tid in (view.task_id, refused.task_id):
        pods = sim.objects("pods", label_selector=task_selector(tid))
        assert {p["spec"].get("nodeName") for p in pods} <= {"plain-1", "plain-2"}


async def test_a_brief_not_ready_flap_fails_nothing_a_long_one_fails_node_not_ready(
    dev_env: WorkflowEnvironment, sim: SimHandle
) -> None:
    """Mid-pull, flap-1's kubelet reports NotReady for 20 s (1 s here), within the 120 s
    grace: its pull starts over and it completes. flap-2 stays NotReady: NodeNotReady once
    the grace has passed since its Ready transition. flap-3 is untouched."""
    nodes = ["flap-1", "flap-2", "flap-3"]
    async with engine(dev_env, sim) as queue:
        handle = await start_task(
            dev_env.client, queue, TaskSpec(images=[SLOW], batch_size=3, node_names=nodes)
        )
        await until(
            lambda: (
                len(
                    [
                        p
                        for p in sim.objects("pods", label_selector=task_selector(handle.id))
                        if p["spec"].get("nodeName")
                    ]
                )
                == 3
            )
        )
        sim.set_node_ready("flap-1", False, mode="notReady")
        sim.set_node_ready("flap-2", False, mode="notReady")
        await asyncio.sleep(20 / SCALE)  # the flap's length: 20 simulated seconds
        sim.set_node_ready("flap-1", True)
        view: TaskView = await handle.result()
    reasons = {d.node_name: d.reason for d in view.failed_node_details}
    assert reasons == {"flap-2": FailureReason.NODE_NOT_READY}, view.failed_node_details
    assert view.progress.completed_nodes == 2
    assert pulls_started(sim, handle.id, "flap-1") == 2, "the flap did not restart its pull"
    assert pulls_started(sim, handle.id, "flap-3") == 1
    sim.set_node_ready("flap-2", True)
