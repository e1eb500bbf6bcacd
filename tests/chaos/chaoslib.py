"""Chaos-suite helpers: kubesim's control API over HTTP, task waits, exact end-state checks, and
a recording proxy that timestamps every Kubernetes request the worker sends.

Every scenario ends with the same three checks (`assert_end_state`): the task's final counts
exactly as the scenario implies, no node pulled twice (kubesim's pull counts), and no Job or Pod
of the task left once TTL or clean-up has run.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
from aiohttp import ClientSession, ClientTimeout, web
from ips_client import IPSClient

from activities.jobspec import NODE_ANNOTATION as NODE_ANN
from activities.jobspec import task_selector
from tests.stack import Stack
from tests.waiting import wait_until

FINAL = ("completed", "failed", "cancelled")
WORKER_IMAGE = "busybox:1.37.0-musl"
# Simulated seconds (time scale 10: 2 s of wall clock per batch).
PULL_SECONDS = 20.0
TIME_SCALE = 10.0


def fresh_image(tag: str) -> str:
    """An image no node holds, declared in no scenario: its pull time is the default size."""
    return f"registry.example.com/chaos/{tag}-{uuid.uuid4().hex[:8]}:1"


def group(name: str, count: int) -> dict[str, Any]:
    """Nodes labelled chaos=<name> that already hold the worker image."""
    return {
        "name": name,
        "count": count,
        "labels": {"chaos": name},
        "images": [{"name": WORKER_IMAGE}],
    }


def scenario(*groups: dict[str, Any]) -> dict[str, Any]:
    """No jitter, instant containers; any image not listed pulls in PULL_SECONDS (simulated):
    its size over the bandwidth, as kubesim computes it."""
    return {
        "defaults": {
            "pullOverheadSeconds": 0.0,
            "pullJitter": 0.0,
            "containerRunSeconds": 0.0,
            # 100 MB/s default bandwidth: PULL_SECONDS of pulling.
            "imageSize": int(PULL_SECONDS * 100 * 1000**2),
        },
        "nodeGroups": list(groups),
        "images": [{"name": WORKER_IMAGE, "size": "2MiB"}],
    }


# Jobs vanish 20 simulated seconds (2 s) after they finish; failures wait out 3 s of grace.
STACK_ENV = {"JOB_TTL_SECONDS": "20", "UNSCHEDULABLE_GRACE_SECONDS": "3", "LOG_LEVEL": "INFO"}


# --------------------------------------------------------------------------------------------
# kubesim control
# --------------------------------------------------------------------------------------------


class Sim:
    """kubesim's /kubesim/ control endpoints and its Kubernetes API, for one stack."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)

    def faults(self, **changes: Any) -> dict[str, Any]:
        response = self.http.post("/kubesim/faults", json=changes)
        response.raise_for_status()
        return dict(response.json())

    def clear_faults(self) -> None:
        self.http.delete("/kubesim/faults").raise_for_status()

    def delete_node(self, name: str) -> None:
        self.http.delete(f"/kubesim/nodes/{name}").raise_for_status()

    def set_ready(self, name: str, ready: bool) -> None:
        self.http.post(f"/kubesim/nodes/{name}/ready", json={"ready": ready}).raise_for_status()

    def add_nodes(self, count: int, group_name: str) -> list[str]:
        response = self.http.post("/kubesim/nodes", json={"count": count, "group": group_name})
        response.raise_for_status()
        body = response.json()
        return list(body.get("added") or body.get("nodes") or body) if body else []

    def stats(self) -> dict[str, Any]:
        response = self.http.get("/kubesim/stats")
        response.raise_for_status()
        return dict(response.json())

    def pulls(self, image: str) -> dict[str, int]:
        """Successful pulls of `image`, per node."""
        response = self.http.get("/kubesim/pulls")
        response.raise_for_status()
        return {p["node"]: p["count"] for p in response.json() if p["image"] == image}

    def node_names(self, label_selector: str) -> list[str]:
        response = self.http.get("/api/v1/nodes", params={"labelSelector": label_selector})
        response.raise_for_status()
        return sorted(n["metadata"]["name"] for n in response.json()["items"])

    def task_objects(self, task_id: str) -> dict[str, list[str]]:
        """Names of the task's Jobs and Pods still in the cluster."""
        params = {"labelSelector": task_selector(task_id)}
        jobs = self.http.get("/apis/batch/v1/namespaces/default/jobs", params=params)
        pods = self.http.get("/api/v1/namespaces/default/pods", params=params)
        jobs.raise_for_status()
        pods.raise_for_status()
        return {
            "jobs": [j["metadata"]["name"] for j in jobs.json()["items"]],
            "pods": [p["metadata"]["name"] for p in pods.json()["items"]],
        }

    def describe_task(self, task_id: str) -> str:
        """One line per Job and Pod of the task: node, state, deletion (for failure messages)."""
        params = {"labelSelector": task_selector(task_id)}
        lines = []
        for path in ("/apis/batch/v1/namespaces/default/jobs", "/api/v1/namespaces/default/pods"):
            for obj in self.http.get(path, params=params).json()["items"]:
                md, st = obj["metadata"], obj.get("status", {})
                conds = [c["type"] for c in st.get("conditions", []) if c["status"] == "True"]
                lines.append(
                    f"{obj['kind']} {md['name']} node={md.get('annotations', {}).get(NODE_ANN)}"
                    f"/{obj['spec'].get('nodeName')} phase={st.get('phase')} conditions={conds} "
                    f"deletion={md.get('deletionTimestamp')} created={md.get('creationTimestamp')}"
                )
        return "\n".join(lines)

    def pods_on(self, task_id: str) -> dict[str, dict[str, Any]]:
        """The task's pods by node name (bound ones only)."""
        params = {"labelSelector": task_selector(task_id)}
        response = self.http.get("/api/v1/namespaces/default/pods", params=params)
        response.raise_for_status()
        return {
            p["spec"]["nodeName"]: p for p in response.json()["items"] if p["spec"].get("nodeName")
        }


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


def get_task(ips: IPSClient, task_id: str) -> dict[str, Any]:
    return ips.get(task_id).model_dump(mode="json", by_alias=True)


def wait_final(stack: Stack, task_id: str, timeout: float = 180.0) -> dict[str, Any]:
    """The task's body once final; tolerates an API that is briefly down."""
    last: dict[str, Any] = {}
    with stack.client(timeout=10) as ips:

        def final() -> dict[str, Any] | None:
            last.update(get_task(ips, task_id))
            return last if last["status"] in FINAL else None

        return wait_until(
            final,
            timeout,
            interval=0.3,
            message=lambda: f"task {task_id} not final: {last.get('progress')}",
            ignore=(Exception,),
        )


def wait_progress(stack: Stack, task_id: str, at_least: int, timeout: float = 120.0) -> int:
    """Until `at_least` nodes are done (completed + failed + warm); returns the count."""
    with stack.client(timeout=10) as ips:

        def done() -> int:
            p = get_task(ips, task_id)["progress"]
            n = int(p["completedNodes"] + p["failedNodes"] + p["alreadyWarmNodes"])
            return n if n >= at_least else 0

        return wait_until(
            done,
            timeout,
            interval=0.2,
            message=f"task {task_id}: fewer than {at_least} nodes done",
            ignore=(Exception,),
        )


def wait_no_objects(sim: Sim, task_id: str, timeout: float = 30.0) -> None:
    left: dict[str, list[str]] = {}

    def gone() -> bool:
        left.update(sim.task_objects(task_id))
        return not left["jobs"] and not left["pods"]

    wait_until(
        gone,
        timeout,
        interval=0.5,
        message=lambda: f"task {task_id} left objects: {left}\n{sim.describe_task(task_id)}",
    )


def assert_end_state(
    sim: Sim,
    task: dict[str, Any],
    *,
    image: str,
    completed: int,
    failed: int = 0,
    status: str = "completed",
    pulled_nodes: list[str] | None = None,
) -> None:
    """Exact counts; every pulled node pulled exactly once; no Job or Pod left (TTL/clean-up)."""
    p = task["progress"]
    assert task["status"] == status, task.get("message")
    assert (p["completedNodes"], p["failedNodes"]) == (completed, failed), p
    assert p["totalNodes"] == completed + failed + p["alreadyWarmNodes"], p
    assert p["percentage"] == 100.0
    pulls = sim.pulls(image)
    twice = {n: c for n, c in pulls.items() if c > 1}
    assert not twice, f"nodes pulled more than once: {twice}"
    if pulled_nodes is not None:
        assert sorted(pulls) == sorted(pulled_nodes)
    assert len(pulls) == completed, (len(pulls), completed)
    wait_no_objects(sim, task["taskId"])


# --------------------------------------------------------------------------------------------
# A recording proxy between the worker and kubesim
# --------------------------------------------------------------------------------------------


@dataclass
class Exchange:
    """One request through the proxy: when it arrived, when it was answered, and with what."""

    key: str  # method + path (+ query), and the object name for a create
    received: float
    answered: float
    status: int
    retry_after: float | None = None


@dataclass
class RecordingProxy:
    """A reverse proxy to kubesim (watches streamed through) that records each exchange, so a
    test can prove that no request was re-sent before the Retry-After of its 429."""

    upstream: str
    exchanges: list[Exchange] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RecordingProxy:
        ready = threading.Event()

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, name="k8s-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(20):
            raise RuntimeError("the recording proxy did not start")
        return self

    async def _serve(self) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=None, sock_read=None))
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        # Watches stream for up to their timeoutSeconds: stop() cancels them after 2 s rather
        # than wait (the worker's node watch is idle for long stretches).
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        received = time.monotonic()
        body = await request.read()
        key = f"{request.method} {request.rel_url}"
        if request.method == "POST" and body:
            try:
                key += " " + str(json.loads(body)["metadata"]["name"])
            except (ValueError, KeyError, TypeError):
                pass
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with self._session.request(
            request.method, self.upstream + str(request.rel_url), data=body, headers=headers
        ) as upstream:
            response = web.StreamResponse(status=upstream.status)
            for k, v in upstream.headers.items():
                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding"):
                    response.headers[k] = v
            retry_after = upstream.headers.get("Retry-After")
            await response.prepare(request)
            self.exchanges.append(
                Exchange(
                    key,
                    received,
                    time.monotonic(),
                    upstream.status,
                    float(retry_after) if retry_after else None,
                )
            )
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    def kubeconfig(self, source: Path, dest: Path) -> Path:
        """A copy of the stack's kubeconfig whose server is this proxy."""
        text = source.read_text()
        lines = [
            f"{line.split('server:')[0]}server: {self.url}" if "server:" in line else line
            for line in text.splitlines()
        ]
        dest.write_text("\n".join(lines) + "\n")
        return dest

    def early_retries(self) -> list[tuple[Exchange, Exchange]]:
        """(429, next request with the same key) pairs where the retry came too early."""
        bad = []
        by_key: dict[str, list[Exchange]] = {}
        for ex in sorted(self.exchanges, key=lambda e: e.received):
            by_key.setdefault(ex.key, []).append(ex)
        for seq in by_key.values():
            for prev, nxt in itertools.pairwise(seq):
                if prev.status == HTTPStatus.TOO_MANY_REQUESTS and prev.retry_after is not None:
                    if nxt.received < prev.answered + prev.retry_after:
                        bad.append((prev, nxt))
        return bad

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            await self._session.close()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
