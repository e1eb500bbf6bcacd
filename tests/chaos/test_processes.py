"""Chaos: the worker and the API die mid-task (SIGKILL: no clean-up at all) and come back.

Each scenario ends exactly: every node completed, none pulled twice, no Job or Pod left.
"""

from __future__ import annotations

import random
import time

import pytest
from ips_client import IPSClient

from tests.chaos.chaoslib import (
    Sim,
    assert_end_state,
    fresh_image,
    get_task,
    wait_final,
    wait_progress,
)
from tests.stack import Stack, free_port
from tests.waiting import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.integration]


def _create(stack: Stack, image: str, pool: str, batch: int) -> str:
    with stack.client() as ips:
        created = ips.create(images=[image], batch_size=batch, node_selector={"chaos": pool})
    return created.task_id


def _batch_lines(stack: Stack, name: str, task_id: str) -> int:
    """How many batch activities of the task this process has started (its log)."""
    return sum(
        1
        for line in stack.procs[name].log_text().splitlines()
        if task_id in line and '"message": "batch ' in line
    )


@pytest.mark.slow
def test_worker_sigkilled_three_times(chaos_stack: Stack, sim: Sim) -> None:
    """200 nodes; the worker is SIGKILLed at 3 seeded random moments and restarted each time."""
    rng = random.Random(20261127)
    image = fresh_image("kill")
    nodes = sim.node_names("chaos=kill")
    assert len(nodes) == 200
    task_id = _create(chaos_stack, image, "kill", batch=20)
    kills = []
    for _ in range(3):
        time.sleep(rng.uniform(1.0, 5.0))  # deliberate: let the task run to a random moment
        with chaos_stack.client() as ips:
            kills.append(get_task(ips, task_id)["progress"]["completedNodes"])
        chaos_stack.procs["worker"].kill()
        chaos_stack.respawn("worker")
    task = wait_final(chaos_stack, task_id, timeout=240)
    assert kills[-1] < 200, f"the kills all came after the end: {kills}"
    assert_end_state(sim, task, image=image, completed=200, pulled_nodes=nodes)


def test_two_workers_one_killed(chaos_stack: Stack, sim: Sim) -> None:
    """A second worker on the same task queue; the one running the batch is killed mid-task."""
    extra = {"METRICS_PORT": str(free_port()), "TEMPORAL_METRICS_PORT": str(free_port())}
    chaos_stack.respawn("worker", as_name="worker2", **extra)
    image = fresh_image("two")
    task_id = _create(chaos_stack, image, "two", batch=10)
    wait_progress(chaos_stack, task_id, at_least=10)
    busy = max(("worker", "worker2"), key=lambda n: _batch_lines(chaos_stack, n, task_id))
    survivor = "worker2" if busy == "worker" else "worker"
    chaos_stack.procs[busy].kill()
    task = wait_final(chaos_stack, task_id, timeout=180)
    assert_end_state(sim, task, image=image, completed=60)
    assert _batch_lines(chaos_stack, survivor, task_id) > 0  # the survivor finished the task
    # Leave one worker, named "worker", for the next scenarios.
    if busy == "worker":
        chaos_stack.respawn("worker")
    chaos_stack.procs["worker2"].stop()


def test_api_restarted_mid_task(chaos_stack: Stack, sim: Sim) -> None:
    """The API is SIGKILLed and restarted mid-task: get and list keep working, and a second API
    that never restarted answers exactly the same, during the task and at its end."""
    api2_port = free_port()
    api2 = chaos_stack.respawn("api", as_name="api2", SERVER_PORT=str(api2_port))
    url2 = f"http://127.0.0.1:{api2_port}"
    image = fresh_image("api")
    task_id = _create(chaos_stack, image, "api", batch=10)
    wait_progress(chaos_stack, task_id, at_least=10)
    chaos_stack.procs["api"].kill()
    chaos_stack.respawn("api")
    with chaos_stack.client() as ips:
        view = get_task(ips, task_id)
        assert view["status"] == "running" and view["progress"]["totalNodes"] == 60
        listed = ips.list(status="running", limit=100)
        assert task_id in [t.task_id for t in listed.tasks]
    task = wait_final(chaos_stack, task_id, timeout=180)

    def listed_final(ips: IPSClient) -> bool:
        return any(
            t.task_id == task_id and t.status.value == task["status"]
            for t in ips.list(limit=100).tasks
        )

    with chaos_stack.client() as ips, IPSClient(url2, chaos_stack.token) as ips2:
        # Visibility catches up with the final search attributes.
        wait_until(
            lambda: listed_final(ips) and listed_final(ips2),
            30,
            interval=0.3,
            message=f"{task_id} never listed as {task['status']} by both APIs",
        )
    with chaos_stack.client() as ips, IPSClient(url2, chaos_stack.token) as ips2:
        assert get_task(ips, task_id) == get_task(ips2, task_id) == task
        mine = ips.list(limit=100).model_dump(mode="json")
        assert mine == ips2.list(limit=100).model_dump(mode="json")
        assert task_id in [t["taskId"] for t in mine["tasks"]]
    assert_end_state(sim, task, image=image, completed=60)
    api2.stop()
