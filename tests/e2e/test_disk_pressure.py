"""DiskPressure end to end: Temporal dev server, a real worker, kubesim whose kubelets report
DiskPressure and whose node lifecycle controller taints those nodes
`node.kubernetes.io/disk-pressure:NoSchedule` (kubesim/node_pressure.py).

A node under disk pressure is skipped with reason `DiskPressure`, not `Tainted` (the task does
not tolerate the taint, but the condition is checked first and names the real cause), and gets
no Job. In follow mode, a node whose pressure clears (image GC freed the disk: the condition
goes False, then the taint goes) is prewarmed once, the ones still under pressure never.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.jobspec import task_selector
from common.models import FollowSpec, SkipReason, TaskPhase, TaskSpec, TaskStatus, TaskView
from kubesim.node_objects import DISK_PRESSURE_TAINT
from kubesim.testing import SimHandle, start_sim
from tests.e2e.test_follow import TIME_SCALE, submit, until_view
from tests.e2e.test_follow import engine as follow_engine

pytestmark = pytest.mark.integration

IMAGE = "registry.example.com/ips-test/disk-pressure:1"
SCENARIO: dict[str, Any] = {
    "defaults": {"pullOverheadSeconds": 0.2, "containerRunSeconds": 0.5},
    "nodeGroups": [
        {"name": "compute", "count": 7, "labels": {"pool": "compute"}, "diskPressure": 2},
        {"name": "other", "count": 2, "labels": {"pool": "other"}, "diskPressure": 1},
    ],
    "images": [{"name": IMAGE, "size": "10MiB", "pullSeconds": {"median": 5, "sigma": 0.1}}],
    "namespaces": ["default", "kube-system"],
}  # fmt: skip
SELECTOR = {"pool": "compute"}


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    with start_sim(nodes=None, scenario=SCENARIO, time_scale=TIME_SCALE, seed=11) as handle:
        yield handle


def names(sim: SimHandle, pred: Callable[[dict[str, Any]], bool]) -> list[str]:
    return sorted(n["metadata"]["name"] for n in sim.objects("nodes") if pred(n))


def _compute(n: dict[str, Any]) -> bool:
    return bool(n["metadata"]["labels"].get("pool") == "compute")


def _pressed(n: dict[str, Any]) -> bool:
    return any(
        c["type"] == "DiskPressure" and c["status"] == "True" for c in n["status"]["conditions"]
    )


def _tainted(n: dict[str, Any]) -> bool:
    return any(t["key"] == DISK_PRESSURE_TAINT for t in n["spec"].get("taints") or [])


def pressure_at_start(sim: SimHandle) -> tuple[list[str], list[str]]:
    """(compute nodes under disk pressure, the other compute nodes): one pressed by the
    scenario, one by the control API just now, both with the condition and the taint."""
    first = names(sim, lambda n: _compute(n) and _pressed(n))
    assert len(first) == 2
    rest = names(sim, lambda n: _compute(n) and not _pressed(n))
    sim.set_node_disk_pressure(rest[0], True)
    pressed = names(sim, lambda n: _compute(n) and _pressed(n))
    assert pressed == sorted([*first, rest[0]])
    assert names(sim, lambda n: _compute(n) and _tainted(n)) == pressed
    return pressed, rest[1:]


def pulls(sim: SimHandle, nodes: list[str]) -> dict[str, int]:
    counts = sim.pull_counts()
    return {n: counts.get((n, IMAGE), 0) for n in nodes}


def job_nodes(sim: SimHandle, task_id: str) -> list[str]:
    jobs = sim.objects("jobs", label_selector=task_selector(task_id))
    return sorted(j["metadata"]["annotations"]["prewarm.ips.io/node"] for j in jobs)


def skipped(view: TaskView) -> dict[str, SkipReason]:
    return {d.node_name: d.reason for d in view.skipped_node_details}


async def test_nodes_under_disk_pressure_are_skipped_as_disk_pressure_and_get_no_job(
    dev_env: WorkflowEnvironment, sim: SimHandle
) -> None:
    pressed, rest = pressure_at_start(sim)
    async with follow_engine(dev_env, sim) as queue:
        spec = TaskSpec(images=[IMAGE], batch_size=2, node_selector=SELECTOR)
        view = await (await submit(dev_env.client, queue, spec)).result()
    assert view.status == TaskStatus.COMPLETED, view.message
    assert skipped(view) == {n: SkipReason.DISK_PRESSURE for n in pressed}
    assert all("kubelet has disk pressure" in d.message for d in view.skipped_node_details)
    p = view.progress
    assert (p.total_nodes, p.completed_nodes, p.failed_nodes) == (len(rest), len(rest), 0)
    assert (p.skipped_nodes, p.already_warm_nodes) == (len(pressed), 0)
    assert job_nodes(sim, view.task_id) == rest  # no Job on a pressed node
    assert pulls(sim, rest) == {n: 1 for n in rest}
    assert pulls(sim, pressed) == {n: 0 for n in pressed}


async def test_follow_prewarms_a_node_once_its_disk_pressure_clears(
    dev_env: WorkflowEnvironment, sim: SimHandle
) -> None:
    pressed, rest = pressure_at_start(sim)
    recovered, still = pressed[0], pressed[1:]
    async with follow_engine(dev_env, sim) as queue:
        handle = await submit(
            dev_env.client, queue, TaskSpec(images=[IMAGE], batch_size=2, node_selector=SELECTOR,
                                            follow=FollowSpec())
        )  # fmt: skip
        first = await until_view(handle, lambda v: v.phase == TaskPhase.FOLLOWING)
        assert skipped(first) == {n: SkipReason.DISK_PRESSURE for n in pressed}
        assert first.progress.completed_nodes == len(rest)
        assert job_nodes(sim, handle.id) == rest

        # Image GC freed the disk: the kubelet posts DiskPressure=False, then the node
        # lifecycle controller removes the taint (two writes; the node is eligible after both).
        sim.set_node_disk_pressure(recovered, False)
        node = next(n for n in sim.objects("nodes") if n["metadata"]["name"] == recovered)
        assert not _pressed(node) and not _tainted(node)
        view = await until_view(
            handle,
            lambda v: (
                v.following is not None
                and v.following.nodes_added == 1
                and v.progress.completed_nodes == len(rest) + 1
            ),
            within=120,
        )
        assert view.status == TaskStatus.RUNNING and view.phase == TaskPhase.FOLLOWING
        assert view.progress.total_nodes == len(rest) + 1
        assert job_nodes(sim, handle.id) == sorted([*rest, recovered])  # one Job each
        assert pulls(sim, [*rest, recovered]) == {n: 1 for n in [*rest, recovered]}
        assert pulls(sim, still) == {n: 0 for n in still}
        await handle.cancel()
        final = await handle.result()
    assert final.status == TaskStatus.CANCELLED
    assert final.following is not None and final.following.nodes_added == 1
    assert {n: r for n, r in skipped(final).items() if n in still} == {
        n: SkipReason.DISK_PRESSURE for n in still
    }
