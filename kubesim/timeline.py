"""The scenario's timeline: node faults at given simulated times (flaps, deletions, cordons,
disk pressure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubesim.cluster import Cluster
    from kubesim.scenario import TimelineStep


def start(cluster: Cluster) -> None:
    for step in cluster.scenario.timeline:
        cluster.later(step.at, _run, cluster, step)


def _run(cluster: Cluster, step: TimelineStep) -> None:
    if step.node not in cluster.nodes:
        return  # scaled away (--nodes) or already deleted
    if step.action in ("notReady", "unreachable", "partitioned"):
        cluster.set_node_ready(step.node, False, step.action)
        if step.seconds is not None:
            cluster.later(step.seconds, _back, cluster, step.node)
    elif step.action == "ready":
        cluster.set_node_ready(step.node, True)
    elif step.action in ("diskPressure", "noDiskPressure"):
        cluster.set_node_disk_pressure(step.node, step.action == "diskPressure")
        if step.action == "diskPressure" and step.seconds is not None:
            cluster.later(step.seconds, _pressure_cleared, cluster, step.node)
    elif step.action == "deleteNode":
        cluster.delete_node(step.node)
    else:
        cluster.set_node_cordoned(step.node, step.action == "cordon")


def _back(cluster: Cluster, node: str) -> None:
    if node in cluster.nodes:
        cluster.set_node_ready(node, True)


def _pressure_cleared(cluster: Cluster, node: str) -> None:
    if node in cluster.nodes:
        cluster.set_node_disk_pressure(node, False)
