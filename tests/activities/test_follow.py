"""Follow mode's node watch (activities/follow.py) against a scripted node API.

The fake keeps an event log with resourceVersions: a watch replays the events after the
resourceVersion it is given, then streams new ones; a resourceVersion older than the
compaction point gets 410 Gone, as the API server's watch cache answers. Each test asserts
the nodes a round returns, the resourceVersion it resumes from, and the requests it made.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.errors import KubernetesGone, KubernetesServerError
from activities.follow import FollowActivities, FollowRound, eligible
from common.engine import PullSpec, WatchNodesInput, WatchNodesResult
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


def watch_input(**kw: Any) -> WatchNodesInput:
    spec = TaskSpec(
        images=[IMAGE],
        batch_size=10,
        tolerations=[Toleration(key="dedicated", value="ips", effect="NoSchedule")],
    )
    values: dict[str, Any] = {
        "task_id": TASK,
        "node_selector": {"pool": "compute"},
        "spec": PullSpec.of(spec),
        "resource_version": "100",
        "max_nodes": 10,
        "gather_seconds": 0.3,
        "max_seconds": 5.0,
    }
    values.update(kw)
    return WatchNodesInput(**values)


async def run_round(
    api: NodeApi, inp: WatchNodesInput, resume: str | None = None
) -> WatchNodesResult:
    env = ActivityEnvironment()

    async def go() -> WatchNodesResult:
        return await FollowRound(api, inp, resume).run()  # type: ignore[arg-type]

    return await env.run(go)


async def test_a_joining_node_is_returned_with_the_resource_version_of_its_event() -> None:
    api = NodeApi([node("compute-1")])
    api.put("ADDED", node("gpu-1", pool="gpu"))  # another pool
    api.put("ADDED", node("compute-2", ready=False))  # joins NotReady
    api.put("ADDED", node("compute-3", taints=[{"key": "startup", "effect": "NoSchedule"}]))
    api.put("ADDED", node("compute-4", cordoned=True))
    api.put("ADDED", node("compute-5", images=[IMAGE]))  # already warm
    api.put("MODIFIED", node("compute-1"))  # covered by the sweep
    rv = api.put("ADDED", node("compute-6"))
    result = await run_round(api, watch_input(covered=["compute-1"]))
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
    result = await run_round(api, watch_input())
    # compute-5's taint is tolerated: it is eligible from its first event on.
    assert result.nodes == ["compute-1", "compute-2", "compute-3", "compute-4", "compute-5"]


async def test_a_full_batch_stops_at_its_last_event_and_the_next_round_resumes_there() -> None:
    api = NodeApi([])
    rvs = [api.put("ADDED", node(f"compute-{i}")) for i in range(5)]
    first = await run_round(api, watch_input(max_nodes=2))
    assert first.nodes == ["compute-0", "compute-1"]
    assert first.resource_version == str(rvs[1])
    second = await run_round(
        api,
        watch_input(max_nodes=2, resource_version=first.resource_version, covered=first.nodes),
    )
    assert second.nodes == ["compute-2", "compute-3"]
    third = await run_round(
        api,
        watch_input(
            max_nodes=2,
            resource_version=second.resource_version,
            covered=first.nodes + second.nodes,
        ),
    )
    assert third.nodes == ["compute-4"]
    assert api.requests["list"] == 0


async def test_nodes_gather_for_a_few_seconds_into_one_batch() -> None:
    api = NodeApi([])

    async def joins() -> None:
        api.put("ADDED", node("compute-a"))
        await asyncio.sleep(0.3)
        api.put("ADDED", node("compute-b"))

    joiner = asyncio.create_task(joins())
    result = await run_round(api, watch_input(gather_seconds=2.0, max_seconds=30.0))
    await joiner
    assert result.nodes == ["compute-a", "compute-b"]


async def test_a_node_that_turns_ineligible_or_goes_away_before_the_round_ends_is_dropped() -> None:
    api = NodeApi([])
    api.put("ADDED", node("compute-1"))
    api.put("ADDED", node("compute-2"))
    api.put("MODIFIED", node("compute-1", ready=False))
    api.put("DELETED", node("compute-2"))
    rv = api.put("ADDED", node("compute-3"))
    result = await run_round(api, watch_input())
    assert result.nodes == ["compute-3"]
    assert result.resource_version == str(rv)


async def test_410_gone_relists_and_finds_every_eligible_node_not_covered() -> None:
    api = NodeApi([node("compute-1"), node("compute-2", ready=False), node("compute-3")])
    api.put("MODIFIED", node("compute-2"))  # turns Ready while no round watches
    api.put("ADDED", node("compute-4"))
    api.compact()
    result = await run_round(api, watch_input(covered=["compute-1", "compute-3"]))
    assert result.nodes == ["compute-2", "compute-4"]
    assert result.relists == 1
    assert api.requests["list"] == 1
    assert api.watch_rvs[0] == "100"  # the first watch got 410 ...
    assert api.watch_rvs[1] == str(api.rv)  # ... the next one starts at the list


async def test_a_relist_with_more_than_a_batch_asks_the_next_round_to_relist() -> None:
    api = NodeApi([node(f"compute-{i}") for i in range(5)])
    first = await run_round(api, watch_input(resource_version="", max_nodes=3))
    assert first.nodes == ["compute-0", "compute-1", "compute-2"]
    assert first.resource_version == ""
    second = await run_round(
        api, watch_input(resource_version="", max_nodes=3, covered=first.nodes)
    )
    assert second.nodes == ["compute-3", "compute-4"]
    assert second.resource_version == str(api.rv)
    assert api.requests["list"] == 2


async def test_a_quiet_round_ends_at_its_deadline_with_the_latest_resource_version() -> None:
    api = NodeApi([node("compute-1")])
    rv = api.put("MODIFIED", node("compute-1"))  # covered: consumed, nothing found
    beats: list[Any] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *a: beats.append(a)

    async def go() -> WatchNodesResult:
        return await FollowRound(
            api, watch_input(covered=["compute-1"], max_seconds=1.5), None
        ).run()  # type: ignore[arg-type]

    result = await env.run(go)
    assert result.nodes == []
    assert result.resource_version == str(rv)
    assert result.events == 1
    assert beats and beats[-1] == (str(rv),)  # a retry would resume from there


async def test_a_retried_round_resumes_from_its_heartbeat() -> None:
    api = NodeApi([])
    api.put("ADDED", node("compute-1"))
    seen = api.put("MODIFIED", node("compute-1", ready=False))
    api.put("ADDED", node("compute-2"))
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=[str(seen)])
    result = await env.run(FollowActivities(api).watch_nodes, watch_input())  # type: ignore[arg-type]
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
    result = await run_round(api, watch_input(covered=covered))
    assert result.gone == ["compute-1", "compute-2"]
    assert result.nodes == ["compute-2"]
    # A relist finds what no watch saw: compute-3 deleted while the history was compacted.
    api.put("DELETED", node("compute-3"))
    api.compact()
    relisted = await run_round(
        api, watch_input(covered=["compute-2", "compute-3"], resource_version="101")
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
    inp = watch_input(resolved=[resolved], pin_digests=True)
    amd64, arm64, warm = node("amd64"), node("arm64"), node("warm")
    for n, arch in ((amd64, "amd64"), (arm64, "arm64"), (warm, "amd64")):
        n["metadata"]["labels"]["kubernetes.io/arch"] = arch
        n["metadata"]["labels"]["kubernetes.io/os"] = "linux"
    warm["status"]["images"] = [{"names": [f"registry.example.com/team/app@{digest}"]}]
    assert [eligible(n, inp) for n in (amd64, arm64, warm)] == [True, False, False]
    # Without the preflight's answer, only the node checks apply: arm64 would get a Job.
    assert eligible(arm64, watch_input()) is True


async def test_a_relist_that_keeps_failing_ends_the_round_and_the_next_one_relists() -> None:
    api = NodeApi([node("compute-1")])
    api.list_errors = 1000
    failed = await run_round(api, watch_input(resource_version="", max_seconds=1.5))
    assert (failed.nodes, failed.resource_version) == ([], "")
    assert api.requests["list"] >= 2  # retried within the round
    api.list_errors = 1  # the API recovers: one more failure, then the list answers
    recovered = await run_round(api, watch_input(resource_version=""))
    assert recovered.nodes == ["compute-1"]
    assert recovered.resource_version == str(api.rv)
