"""Kube.list_pages (activities/kube.py): one paginated list, through the real `Kube.call`
(rate limiter, JSON reading, typed errors), against a scripted `list_node` that pages by
`limit` and `_continue` as the API server does. The callers (list_nodes, the node watch,
follow mode's relist) are checked over the same scripted API.

The scripted server moves its resourceVersion on with every request. A continued page is served
from the first page's snapshot and carries its resourceVersion, as the API server does; with
`drift` it carries the current one instead, so that a test can tell which page's a caller keeps
(the first page's: the snapshot's).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from temporalio.testing import ActivityEnvironment

from activities.errors import KubernetesGone
from activities.follow import FollowSource
from activities.kube import LIST_PAGE, Kube
from activities.nodewatch import NodeWatch
from activities.prewarm import PrewarmActivities
from common.engine import FollowNodesInput, ListNodesInput, PullSpec
from common.models import TaskSpec
from common.settings import Settings
from tests.activities.fakekube import node_obj

pytestmark = pytest.mark.unit

IMAGE = "registry.example.com/team/app:1"


class _Response:
    """What `fn(..., _preload_content=False)` returns: a urllib3 response, read once."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.status = 200
        self.data = json.dumps(body).encode()

    def release_conn(self) -> None:
        return None


class NodeServer:
    """`CoreV1Api.list_node` for a fixed set of nodes, paginated like the API server."""

    def __init__(self, count: int) -> None:
        self.nodes = [node_obj(f"node-{i:04d}") for i in range(count)]
        for i, n in enumerate(self.nodes):
            n["metadata"]["labels"] = {"pool": "a" if i % 2 == 0 else "b"}
        self.rv = 1000
        self.requests: list[dict[str, Any]] = []  # the kwargs of every request
        self.fail: dict[int, ApiException] = {}  # request number (from 1) -> its error
        self.drift = False  # continued pages carry the current resourceVersion

    def list_node(self, **kw: Any) -> _Response:
        self.requests.append(kw)
        self.rv += 1  # the cluster moves on between requests
        if len(self.requests) in self.fail:
            raise self.fail[len(self.requests)]
        wanted = self.nodes
        if kw.get("label_selector"):
            key, value = kw["label_selector"].split("=")
            wanted = [n for n in wanted if n["metadata"]["labels"].get(key) == value]
        start, rv = 0, self.rv
        if kw.get("_continue"):
            token = json.loads(kw["_continue"])
            start = token["start"]
            rv = self.rv if self.drift else token["rv"]  # a continued page serves the snapshot
        end = start + (kw.get("limit") or len(wanted))
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if end < len(wanted):
            meta["continue"] = json.dumps({"start": end, "rv": rv})
        return _Response({"kind": "NodeList", "metadata": meta, "items": wanted[start:end]})

    def starts(self) -> list[int]:
        """Where each request started (0 for a first page)."""
        return [json.loads(kw["_continue"])["start"] if "_continue" in kw else 0
                for kw in self.requests]  # fmt: skip


def kube_for(server: NodeServer) -> Kube:
    kube = Kube(Settings(metrics_port=0, k8s_qps=10000, k8s_burst=10000), k8s.ApiClient())
    kube.core.list_node = server.list_node  # type: ignore[method-assign]
    return kube


def names(pages: list[dict[str, Any]]) -> list[str]:
    return [n["metadata"]["name"] for p in pages for n in p.get("items") or []]


# The iterator --------------------------------------------------------------------------------


async def test_pages_follow_the_continue_tokens_one_request_a_page() -> None:
    server = NodeServer(1203)
    kube = kube_for(server)
    try:
        listing = kube.list_pages("nodes", kube.core.list_node)
        pages = [page async for page in listing]
    finally:
        kube.close()
    assert [len(p["items"]) for p in pages] == [LIST_PAGE, LIST_PAGE, 1203 - 2 * LIST_PAGE]
    assert names(pages) == [n["metadata"]["name"] for n in server.nodes]  # each node once
    assert len(server.requests) == len(pages) == listing.pages == 3
    assert server.starts() == [0, LIST_PAGE, 2 * LIST_PAGE]
    assert all(kw["limit"] == LIST_PAGE for kw in server.requests)
    assert "_continue" not in server.requests[0]
    assert [kw["_continue"] for kw in server.requests[1:]] == [
        p["metadata"]["continue"] for p in pages[:-1]
    ]


@pytest.mark.parametrize("drift", [False, True])
async def test_the_first_pages_resource_version_is_kept(drift: bool) -> None:
    server = NodeServer(25)
    server.drift = drift
    kube = kube_for(server)
    try:
        listing = kube.list_pages("nodes", kube.core.list_node, page_size=10)
        seen: list[tuple[str, str]] = []
        async for page in listing:
            seen.append((page["metadata"]["resourceVersion"], listing.resource_version))
            server.rv += 50  # writes land while the caller works on the page
    finally:
        kube.close()
    served = ["1001", "1052", "1103"] if drift else ["1001"] * 3
    assert seen == [(rv, "1001") for rv in served]  # known from the first page on
    assert listing.resource_version == "1001"


async def test_the_label_selector_and_page_size_go_with_every_request() -> None:
    server = NodeServer(30)
    kube = kube_for(server)
    try:
        listing = kube.list_pages(
            "nodes", kube.core.list_node, page_size=4, label_selector="pool=a"
        )
        pages = [page async for page in listing]
    finally:
        kube.close()
    assert len(names(pages)) == 15 and len(server.requests) == 4  # 4 + 4 + 4 + 3
    assert all(kw["label_selector"] == "pool=a" and kw["limit"] == 4 for kw in server.requests)
    assert all(n.endswith(("0", "2", "4", "6", "8")) for n in names(pages))


async def test_a_list_that_fits_one_page_is_one_request() -> None:
    server = NodeServer(LIST_PAGE)
    kube = kube_for(server)
    try:
        listing = kube.list_pages("nodes", kube.core.list_node)
        pages = [page async for page in listing]
    finally:
        kube.close()
    assert len(pages) == len(server.requests) == 1
    assert listing.resource_version == pages[0]["metadata"]["resourceVersion"]


async def test_a_failed_page_raises_its_typed_error_and_a_new_iteration_starts_over() -> None:
    server = NodeServer(25)
    server.fail[2] = ApiException(status=410, reason="Expired")  # the continue token expired
    kube = kube_for(server)
    try:
        listing = kube.list_pages("nodes", kube.core.list_node, page_size=10)
        got: list[dict[str, Any]] = []
        with pytest.raises(KubernetesGone):
            async for page in listing:
                got.append(page)
        assert len(got) == 1 and len(server.requests) == 2  # not retried: 410 is not transient
        again = [page async for page in listing]
    finally:
        kube.close()
    assert server.starts() == [0, 10, 0, 10, 20]
    assert len(names(again)) == 25
    assert listing.resource_version == again[0]["metadata"]["resourceVersion"] == "1003"


def test_a_page_size_below_one_is_refused_naming_the_field() -> None:
    kube = kube_for(NodeServer(1))
    try:
        with pytest.raises(ValueError, match="page_size must be at least 1, got 0"):
            kube.list_pages("nodes", kube.core.list_node, page_size=0)
    finally:
        kube.close()


# The callers ---------------------------------------------------------------------------------


async def test_list_nodes_heartbeats_each_page_and_keeps_the_first_pages_version() -> None:
    server = NodeServer(1100)
    server.drift = True
    kube = kube_for(server)
    beats: list[Any] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *d: beats.append(d[0])
    spec = TaskSpec(images=[IMAGE], batch_size=10, node_selector={"pool": "b"})
    try:
        activities = PrewarmActivities(kube, Settings(metrics_port=0))
        selection = await env.run(
            activities.list_nodes, ListNodesInput(task_id="task-1", spec=spec)
        )
    finally:
        kube.close()
    assert len(server.requests) == 2  # 550 nodes in pool b: two pages
    assert all(kw["label_selector"] == "pool=b" for kw in server.requests)
    assert beats == [LIST_PAGE, 550]
    assert len(selection.targets) == 550
    assert selection.resource_version == "1001"


async def test_list_nodes_without_a_selector_sends_none() -> None:
    server = NodeServer(3)
    kube = kube_for(server)
    try:
        activities = PrewarmActivities(kube, Settings(metrics_port=0))
        await ActivityEnvironment().run(
            activities.list_nodes,
            ListNodesInput(task_id="task-1", spec=TaskSpec(images=[IMAGE], batch_size=1)),
        )
    finally:
        kube.close()
    assert len(server.requests) == 1 and "label_selector" not in server.requests[0]


async def test_the_node_watch_keeps_the_first_pages_version() -> None:
    server = NodeServer(1203)
    server.drift = True  # the node watch used to keep the last page's
    kube = kube_for(server)
    try:
        watch = NodeWatch(kube)
        rv = await watch._list()
    finally:
        kube.close()
    assert len(server.requests) == 3 and rv == "1001"
    assert len(watch.nodes) == 1203 and watch.synced and watch.lists == 1
    assert "label_selector" not in server.requests[0]


def follow_input() -> FollowNodesInput:
    spec = PullSpec.of(TaskSpec(images=[IMAGE], batch_size=10))
    return FollowNodesInput(
        task_id="task-1", unit=1, node_selector={"pool": "a"}, spec=spec, pull=spec,
        resource_version="", in_flight=10, max_nodes=1000,
        until=datetime.now(UTC) + timedelta(seconds=30),
    )  # fmt: skip


async def test_follows_relist_starts_over_after_a_failed_page_and_keeps_its_first_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("activities.follow.RETRY_SECONDS", 0.01)
    server = NodeServer(1203)
    server.drift = True
    server.fail[2] = ApiException(status=403, reason="Forbidden")  # Kube.call retries no 403
    kube = kube_for(server)

    async def relist() -> FollowSource:
        source = FollowSource(kube, follow_input())
        await source._relist()
        return source

    try:
        source = await ActivityEnvironment().run(relist)
    finally:
        kube.close()
    assert server.starts() == [0, LIST_PAGE, 0, LIST_PAGE, 2 * LIST_PAGE]
    assert source.relists == 1
    assert source.rv == "1003"  # the successful listing's first page
    assert len(set(source.taken)) == len(source.taken) == 602  # pool a, each node once
    assert not source.gone and not source.full
