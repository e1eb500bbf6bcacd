"""Follow mode's node watch (activities/follow.py, FollowSource) against a scripted node API.

The fake keeps an event log with resourceVersions: a watch replays the events after the
resourceVersion it is given, then streams new ones; a resourceVersion older than the
compaction point gets 410 Gone, as the API server's watch cache answers. Each test asserts
the nodes a unit takes (in order), the resourceVersion the next unit resumes from, and the
requests it made.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.errors import KubernetesGone, KubernetesServerError
from activities.follow import FollowSource, eligible
from activities.kube import Kube
from common.engine import FollowNodesInput, PullSpec
from common.models import TaskSpec, Toleration
from common.preflight import ImagePlatform, ResolvedImage

pytestmark = pytest.mark.unit

IMAGE = "registry.example.com/team/app:1"
TASK = "task-20260101-000000-0000f011"


def node(
    name: str,
    *,
    ready: bool = True,
    pool: str = "compute",
    cordoned: bool = False,
    taints: list[dict[str, str]] | None = None,
    images: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"pool": pool}},
        "spec": {"unschedulable": cordoned, "taints": taints or []},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "images": [{"names": images}] if images else [],
        },
    }


class NodeApi:
    """Kube's `call` and `watch` for nodes only, with a replayable event log."""

    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self.core = SimpleNamespace(list_node=lambda *a, **k: None)
        self.rv = 100
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        for n in nodes:
            n["metadata"]["resourceVersion"] = str(self.rv)
        self.log: list[tuple[int, dict[str, Any]]] = []
        self.compacted = 0  # watches from an older resourceVersion get 410
        self.requests: Counter[str] = Counter()
        self.watch_rvs: list[str] = []
        self.changed = asyncio.Event()
        self.list_errors = 0  # the next lists fail with a 503

    def put(self, kind: str, obj: dict[str, Any]) -> int:
        self.rv += 1
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            self.nodes.pop(name, None)
        else:
            self.nodes[name] = obj
        self.log.append((self.rv, {"type": kind, "object": obj}))
        self.changed.set()
        return self.rv

    def compact(self) -> None:
        self.compacted = self.rv

    list_pages = Kube.list_pages  # the real pagination, over this `call`

    async def call(
        self, verb: str, resource: str, fn: Callable[..., Any], *args: Any, **kw: Any
    ) -> dict[str, Any]:
        assert (verb, resource) == ("list", "nodes"), (verb, resource)
        self.requests["list"] += 1
        if self.list_errors:
            self.list_errors -= 1
            raise KubernetesServerError("etcdserver: leader changed", code=503)
        return {"metadata": {"resourceVersion": str(self.rv)}, "items": list(self.nodes.values())}

    async def watch(
        self,
        resource: str,
        fn: Callable[..., Any],
        *args: Any,
        resource_version: str,
        timeout_seconds: int,
        on_event: Callable[[dict[str, Any]], None],
        stop: threading.Event,
        **kw: Any,
    ) -> None:
        self.requests["watch"] += 1
        self.watch_rvs.append(resource_version)
        at = int(resource_version)
        if at < self.compacted:
            raise KubernetesGone("too old resource version", code=410)
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_seconds
        while not stop.is_set() and loop.time() < end:
            for rv, event in list(self.log):
                if rv > at:
                    at = rv
                    on_event(event)
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 0.05)
            except TimeoutError:
                pass


def follow_input(seconds: float = 1.0, **kw: Any) -> FollowNodesInput:
    spec = TaskSpec(
        images=[IMAGE],
        batch_size=10,
        tolerations=[Toleration(key="dedicated", value="ips", effect="NoSchedule")],
    )
    values: dict[str, Any] = {
        "task_id": TASK,
        "unit": 1,
        "node_selector": {"pool": "compute"},
        "spec": PullSpec.of(spec),
        "pull": PullSpec.of(spec),
        "resource_version": "100",
        "in_flight": 10,
        "max_nodes": 10,
        "until": datetime.now(UTC) + timedelta(seconds=seconds),
    }
    values.update(kw)
    return FollowNodesInput(**values)


@dataclasses.dataclass
class Unit:
    """What one unit's node source did: the nodes handed to the batch, in order."""

    nodes: list[str]
    resource_version: str
    gone: list[str]
    relists: int
    events: int
    restored: list[str]


async def run_unit(
    api: NodeApi,
    inp: FollowNodesInput,
    details: list[Any] | None = None,
    on_add: Callable[[str], None] | None = None,
) -> Unit:
    env = ActivityEnvironment()
    if details is not None:
        env.info = dataclasses.replace(env.info, heartbeat_details=details)
    added: list[str] = []

    async def go() -> Unit:
        source = FollowSource(api, inp)  # type: ignore[arg-type]
        restored = source.restore()

        def add(name: str) -> None:
            added.append(name)
            if on_add is not None:
                on_add(name)

        await source.run(add)
        await asyncio.sleep(0)  # the adds the watch thread queued on the loop
        assert source.snapshot() == {"rv": source.rv, "nodes": restored + added}
        return Unit(added, source.rv, sorted(source.gone), source.relists, source.events, restored)

    return await env.run(go)


async def test_a_joining_node_is_taken_with_the_resource_version_of_its_event() -> None:
    api = NodeApi([node("compute-1")])
    api.put("ADDED", node("gpu-1", pool="gpu"))  # another pool
    api.put("ADDED", node("compute-2", ready=False))  # joins NotReady
    api.put("ADDED", node("compute-3", taints=[{"key": "startup", "effect": "NoSchedule"}]))
    api.put("ADDED", node("compute-4", cordoned=True))
    api.put("ADDED", node("compute-5", images=[IMAGE]))  # already warm
    api.put("MODIFIED", node("compute-1"))  # covered by the sweep
    rv = api.put("ADDED", node("compute-6"))
    result = await run_unit(api, follow_input(covered=["compute-1"]))
    assert result.nodes == ["compute-6"]
    assert result.resource_version == str(rv)
    assert result.relists == 0
    assert api.requests["list"] == 0
    assert api.watch_rvs[0] == "100"


async def test_nodes_skipped_at_the_start_count_once_they_become_eligible() -> None:
    skipped = [
        node("compute-1", ready=False),
        node("compute-2", cordoned=True),
        node("compute-3", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]),
        node("compute-4", pool="staging"),
        node("compute-5", taints=[{"key": "dedicated", "value": "ips", "effect": "NoSchedule"}]),
    ]
    api = NodeApi(skipped)
    for name in ("compute-1", "compute-2", "compute-3", "compute-4"):
        api.put("MODIFIED", node(name))
    api.put(
        "MODIFIED", {**skipped[4], "metadata": {"name": "compute-5", "labels": {"pool": "compute"}}}
    )
    result = await run_unit(api, follow_input())
    # compute-5's taint is tolerated: it is eligible from its first event on.
    assert result.nodes == ["compute-1", "compute-2", "compute-3", "compute-4", "compute-5"]


async def test_each_node_is_handed_over_as_its_event_arrives_with_no_gathering() -> None:
    api = NodeApi([])
    api.put("ADDED", node("compute-a"))
    order: list[str] = []

    def on_add(name: str) -> None:
        order.append(f"add {name}")
        if name == "compute-a":
            order.append("join compute-b")
            api.put("ADDED", node("compute-b"))

    result = await run_unit(api, follow_input(seconds=1.0), on_add=on_add)
    # compute-a went to the batch before compute-b even joined: no node waits for another.
    assert order == ["add compute-a", "join compute-b", "add compute-b"]
    assert result.nodes == ["compute-a", "compute-b"]
    assert api.requests["watch"] == 1  # one watch request for both


async def test_a_full_unit_stops_at_its_last_event_and_the_next_unit_resumes_there() -> None:
    api = NodeApi([])
    rvs = [api.put("ADDED", node(f"compute-{i}")) for i in range(5)]
    started = time.monotonic()
    first = await run_unit(api, follow_input(seconds=30, max_nodes=2))
    assert time.monotonic() - started < 20  # ended by its node count, not by `until`
    assert first.nodes == ["compute-0", "compute-1"]
    assert first.resource_version == str(rvs[1])
    second = await run_unit(
        api,
        follow_input(max_nodes=2, resource_version=first.resource_version, covered=first.nodes),
    )
    assert second.nodes == ["compute-2", "compute-3"]
    third = await run_unit(
        api,
        follow_input(
            max_nodes=2,
            resource_version=second.resource_version,
            covered=first.nodes + second.nodes,
        ),
    )
    assert third.nodes == ["compute-4"]
    assert api.requests["list"] == 0


async def test_a_taken_node_that_goes_away_is_reported_gone() -> None:
    api = NodeApi([])
    api.put("ADDED", node("compute-1"))
    api.put("ADDED", node("compute-2"))
    api.put("MODIFIED", node("compute-1", ready=False))  # its Job is judged by the batch
    api.put("DELETED", node("compute-2"))
    rv = api.put("ADDED", node("compute-3"))
    result = await run_unit(api, follow_input())
    assert result.nodes == ["compute-1", "compute-2", "compute-3"]
    assert result.gone == ["compute-2"]
    assert result.resource_version == str(rv)


async def test_a_node_that_rejoins_during_the_unit_is_left_to_the_next_unit() -> None:
    api = NodeApi([])
    api.put("ADDED", node("compute-1"))
    deleted = api.put("DELETED", node("compute-1"))
    api.put("ADDED", node("compute-1"))  # the autoscaler reuses the name
    first = await run_unit(api, follow_input(seconds=30))
    assert (first.nodes, first.gone) == (["compute-1"], ["compute-1"])
    assert first.resource_version == str(deleted)  # the rejoin is not consumed
    second = await run_unit(api, follow_input(resource_version=first.resource_version))
    assert second.nodes == ["compute-1"]


async def test_410_gone_relists_and_takes_every_eligible_node_not_covered() -> None:
    api = NodeApi([node("compute-1"), node("compute-2", ready=False), node("compute-3")])
    api.put("MODIFIED", node("compute-2"))  # turns Ready while no unit watches
    api.put("ADDED", node("compute-4"))
    api.compact()
    result = await run_unit(api, follow_input(covered=["compute-1", "compute-3"]))
    assert result.nodes == ["compute-2", "compute-4"]
    assert result.relists == 1
    assert api.requests["list"] == 1
    assert api.watch_rvs[0] == "100"  # the first watch got 410 ...
    assert api.watch_rvs[1] == str(api.rv)  # ... the next one starts at the list


async def test_a_relist_with_more_than_the_unit_takes_asks_the_next_unit_to_relist() -> None:
    api = NodeApi([node(f"compute-{i}") for i in range(5)])
    first = await run_unit(api, follow_input(resource_version="", max_nodes=3))
    assert first.nodes == ["compute-0", "compute-1", "compute-2"]
    assert first.resource_version == ""
    second = await run_unit(
        api, follow_input(resource_version="", max_nodes=3, covered=first.nodes)
    )
    assert second.nodes == ["compute-3", "compute-4"]
    assert second.resource_version == str(api.rv)
    assert api.requests["list"] == 2


async def test_a_quiet_unit_ends_at_until_with_the_latest_resource_version() -> None:
    api = NodeApi([node("compute-1")])
    rv = api.put("MODIFIED", node("compute-1"))  # covered: consumed, nothing taken
    result = await run_unit(api, follow_input(covered=["compute-1"], seconds=1.0))
    assert result.nodes == []
    assert result.resource_version == str(rv)
    assert result.events == 1


async def test_a_retried_unit_takes_its_nodes_again_and_resumes_from_its_heartbeat() -> None:
    api = NodeApi([])
    api.put("ADDED", node("compute-1"))
    seen = api.put("MODIFIED", node("compute-1", ready=False))
    api.put("ADDED", node("compute-2"))
    details = [[0], None, {"rv": str(seen), "nodes": ["compute-1"]}]
    result = await run_unit(api, follow_input(), details=details)
    assert result.restored == ["compute-1"]  # its Job is adopted, never created twice
    assert result.nodes == ["compute-2"]
    assert api.watch_rvs[0] == str(seen)


async def test_a_covered_node_deleted_is_reported_gone_and_prewarmed_again_when_it_rejoins() -> (
    None
):
    api = NodeApi([node("compute-1"), node("compute-2"), node("compute-3")])
    api.put("DELETED", node("compute-1"))
    api.put("DELETED", node("compute-2"))
    api.put("ADDED", node("compute-2"))  # the autoscaler reuses the name
    covered = ["compute-1", "compute-2", "compute-3"]
    result = await run_unit(api, follow_input(covered=covered))
    assert result.gone == ["compute-1", "compute-2"]
    assert result.nodes == []  # still covered in this unit: the next one takes it
    second = await run_unit(
        api, follow_input(covered=["compute-3"], resource_version=result.resource_version)
    )
    assert second.nodes == ["compute-2"]
    # A relist finds what no watch saw: compute-3 deleted while the history was compacted.
    api.put("DELETED", node("compute-3"))
    api.compact()
    relisted = await run_unit(
        api, follow_input(covered=["compute-2", "compute-3"], resource_version="101")
    )
    assert relisted.relists == 1
    assert relisted.gone == ["compute-3"]
    assert relisted.nodes == []


def test_a_joined_node_is_checked_against_the_preflight_like_the_sweeps_nodes() -> None:
    """The preflight's answer reaches follow mode: a joined arm64 node is not eligible for an
    amd64-only image (NoMatchingPlatform), and a node listing the resolved digest is warm."""
    digest = "sha256:" + "ab" * 32
    resolved = ResolvedImage(
        image=IMAGE,
        digest=digest,
        platforms=[
            ImagePlatform(os="linux", architecture="amd64", digest=digest, compressed_size=1)
        ],
    )
    inp = follow_input(resolved=[resolved], pin_digests=True)
    amd64, arm64, warm = node("amd64"), node("arm64"), node("warm")
    for n, arch in ((amd64, "amd64"), (arm64, "arm64"), (warm, "amd64")):
        n["metadata"]["labels"]["kubernetes.io/arch"] = arch
        n["metadata"]["labels"]["kubernetes.io/os"] = "linux"
    warm["status"]["images"] = [{"names": [f"registry.example.com/team/app@{digest}"]}]
    assert [eligible(n, inp) for n in (amd64, arm64, warm)] == [True, False, False]
    # Without the preflight's answer, only the node checks apply: arm64 would get a Job.
    assert eligible(arm64, follow_input()) is True


async def test_a_relist_that_keeps_failing_ends_the_unit_and_the_next_one_relists() -> None:
    api = NodeApi([node("compute-1")])
    api.list_errors = 1000
    failed = await run_unit(api, follow_input(resource_version="", seconds=1.5))
    assert (failed.nodes, failed.resource_version) == ([], "")
    assert api.requests["list"] >= 2  # retried within the unit
    api.list_errors = 1  # the API recovers: one more failure, then the list answers
    recovered = await run_unit(api, follow_input(resource_version=""))
    assert recovered.nodes == ["compute-1"]
    assert recovered.resource_version == str(api.rv)
