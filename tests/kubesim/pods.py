"""Pods, events and images shared by the kubelet, scheduling and Job controller tests."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from kubesim.testing import SimHandle

PRIVATE = "registry.example.com/ips-test/private:1"
NOT_FOUND = "registry.example.com/ips-test/not-found:1"
DISTROLESS = "registry.example.com/ips-test/distroless:1"
FLAKY = "registry.example.com/ips-test/flaky:1"
RATE_LIMITED = "registry.example.com/ips-test/rate-limited:1"


def events(sim: SimHandle, pod: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The events about one pod, oldest first, as (type, reason, message)."""
    evs = [
        e
        for e in sim.objects("events", "default")
        if e["involvedObject"]["uid"] == pod["metadata"]["uid"]
    ]
    evs.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [(e["type"], e["reason"], e["message"]) for e in evs]


def waiting(pod: dict[str, Any], i: int = 0) -> dict[str, Any]:
    """The waiting state of container ``i``, or {}."""
    return (
        pod["status"].get("containerStatuses", [{}] * (i + 1))[i].get("state", {}).get("waiting")
        or {}
    )


def create(batch: client.BatchV1Api, body: dict[str, Any]) -> None:
    batch.create_namespaced_job("default", body)
