"""Chaos: the Temporal server restarts while a task follows new nodes (issue 15).

The whole stack runs as processes (API, worker, kubesim; a dev server on a SQLite file this test
owns). While Temporal is down, nodes join like an autoscaler's (NotReady with startup taints,
then Ready and untainted) and kubesim forgets its watch history, so a resumed watch gets 410.
Once Temporal is back, every joined node is prewarmed exactly once; DELETE then cancels the
task and leaves no Job or Pod.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bench.harness import TemporalServer
from tests.chaos.chaoslib import (
    STACK_ENV,
    TIME_SCALE,
    Sim,
    fresh_image,
    get_task,
    group,
    scenario,
    wait_final,
    wait_no_objects,
)
from tests.stack import run_stack
from tests.waiting import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.integration]


def joined_and_eligible(sim: Sim, names: list[str]) -> bool:
    nodes = {n["metadata"]["name"]: n for n in sim.http.get("/api/v1/nodes").json()["items"]}
    for name in names:
        node = nodes.get(name)
        if node is None or node["spec"].get("taints"):
            return False
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        if not ready or ready[0]["status"] != "True":
            return False
    return True


def test_temporal_restarted_while_following_loses_no_joined_node(
    temporal: TemporalServer, tmp_path: Path
) -> None:
    with run_stack(
        temporal.address,
        tmp_path / "stack",
        scenario=scenario(group("follow", 4)),
        time_scale=TIME_SCALE,
        extra_env=STACK_ENV,
    ) as stack:
        sim = Sim(stack.sim_url)
        image = fresh_image("follow")
        with stack.client(timeout=10) as ips:
            task_id = ips.create(
                images=[image], batch_size=10, node_selector={"chaos": "follow"}, follow={}
            ).task_id

            def view() -> dict[str, Any]:
                return get_task(ips, task_id)

            wait_until(
                lambda: view().get("phase") == "following", 90, interval=0.3, ignore=(Exception,)
            )
            temporal.stop()
            joined: list[str] = sim.http.post(
                "/kubesim/autoscaler/join",
                json={"count": 3, "group": "follow", "readyAfterSeconds": 10,
                      "taintsRemovedAfterSeconds": 10},
            ).json()["joined"]  # fmt: skip
            wait_until(lambda: joined_and_eligible(sim, joined), 60, interval=0.3)
            sim.http.post("/kubesim/compact").raise_for_status()
            time.sleep(1.0)  # Temporal still down: the worker's round cannot report
            assert stack.procs["worker"].alive() and stack.procs["api"].alive()
            temporal.start()

            def all_added() -> dict[str, Any] | None:
                body = view()
                following = body.get("following") or {}
                done = following.get("nodesAdded") == 3 and body["progress"]["completedNodes"] == 7
                return body if done else None

            body = wait_until(all_added, 180, interval=0.5, ignore=(Exception,))
            assert body["status"] == "running" and body["progress"]["totalNodes"] == 7
            ips.cancel(task_id)
        task = wait_final(stack, task_id)
        assert task["status"] == "cancelled"
        pulls = sim.pulls(image)
        assert {n: pulls.get(n) for n in joined} == {n: 1 for n in joined}
        assert len(pulls) == 7 and set(pulls.values()) == {1}
        wait_no_objects(sim, task_id)
