"""A Python handle on an in-process kubesim, for tests and benchmarks.

The server runs in a background thread with its own event loop, so neither the test's event loop
nor an in-process Temporal worker can starve it. Every method is thread-safe: it runs on the
simulator's loop and waits for the result.

    with start_sim(nodes=20, time_scale=50) as sim:
        kubernetes.config.load_kube_config(config_file=str(sim.kubeconfig_path))
        ...
        sim.set_faults(http429={"create": 0.5}, retry_after_seconds=2)
        assert sim.pull_counts()[("compute-1", "nginx:latest")] == 1
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import pytest

from kubesim.runtime import SimServer, write_kubeconfig
from kubesim.scenario import Faults, Scenario
from kubesim.selectors import labels_match, parse_label_selector

T = TypeVar("T")

KINDS = {"node": "Node", "nodes": "Node", "pod": "Pod", "pods": "Pod", "job": "Job", "jobs": "Job",
         "event": "Event", "events": "Event", "namespace": "Namespace", "namespaces": "Namespace",
         "secret": "Secret", "secrets": "Secret"}  # fmt: skip


class SimHandle:
    """A running kubesim: `url`, `kubeconfig_path`, stats and fault control."""

    def __init__(self, server: SimServer, loop: asyncio.AbstractEventLoop, thread: threading.Thread,
                 kubeconfig_path: Path, tmpdir: Path | None) -> None:  # fmt: skip
        self._server = server
        self._loop = loop
        self._thread = thread
        self.url = server.url
        self.kubeconfig_path = kubeconfig_path
        self._tmpdir = tmpdir
        self._stopped = False

    @property
    def cluster(self) -> Any:
        """The Cluster object; touch it only through `call`."""
        return self._server.cluster

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn()` on the simulator's loop and return its result."""
        if threading.current_thread() is self._thread:
            return fn()
        fut: Future[T] = Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as e:
                fut.set_exception(e)

        self._loop.call_soon_threadsafe(run)
        return fut.result(timeout=30)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    # -- observation ------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return self.call(self.cluster.stats)

    def pull_counts(self) -> dict[tuple[str, str], int]:
        """Successful pulls per (node, image as written in the pod spec)."""
        return self.call(lambda: dict(self.cluster.pull_counts))

    def objects(
        self, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Deep copies of the stored objects of `kind` ("pods", "Job", ...)."""
        import json

        k = KINDS.get(kind.lower(), kind)
        reqs = parse_label_selector(label_selector)

        def collect() -> list[dict[str, Any]]:
            return [json.loads(e.raw) for e in self.cluster.store.entries(k, namespace)
                    if labels_match(reqs, e.labels)]  # fmt: skip

        return self.call(collect)

    def node_images(self, name: str) -> list[str]:
        """Every image the node holds (the kubelet's store, not the capped status list)."""
        return self.call(lambda: list(self.cluster.nodes[name].images))

    # -- control ----------------------------------------------------------------------------
    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change fault injection; keys as in `Faults` (snake_case or camelCase):
        http500 / http429 ({verb: rate}, verb "*" for all), retry_after_seconds, latency_ms,
        watch_disconnect_seconds, expire_next_watch (the next re-watch gets 410 Gone)."""

        def apply() -> dict[str, Any]:
            merged = {
                **self.cluster.faults.model_dump(),
                **Faults.model_validate(changes).model_dump(exclude_unset=True),
            }
            self.cluster.faults = Faults.model_validate(merged)
            return dict(self.cluster.faults.model_dump(by_alias=True))

        return self.call(apply)

    def clear_faults(self) -> None:
        self.call(lambda: setattr(self.cluster, "faults", Faults()))

    def expire_watches(self) -> None:
        """Compact the history: any watch resuming from an older resourceVersion gets 410."""
        self.call(self.cluster.store.compact)

    def delete_node(self, name: str) -> None:
        self.call(lambda: self.cluster.delete_node(name))

    def set_node_ready(self, name: str, ready: bool, mode: str = "unreachable") -> None:
        """False: the kubelet stops; `unreachable` shows after node-monitor-grace-period,
        `notReady` (the kubelet reports Ready=False) at once; `partitioned` looks like
        `unreachable` but the kubelet keeps pulling and reports when the partition heals."""
        self.call(lambda: self.cluster.set_node_ready(name, ready, mode))

    def set_node_cordoned(self, name: str, cordoned: bool) -> None:
        self.call(lambda: self.cluster.set_node_cordoned(name, cordoned))

    def set_node_disk_pressure(self, name: str, pressure: bool) -> None:
        """The kubelet reports DiskPressure=True (False), then the node lifecycle controller
        adds (removes) the `node.kubernetes.io/disk-pressure:NoSchedule` taint: two writes."""
        self.call(lambda: self.cluster.set_node_disk_pressure(name, pressure))

    def add_nodes(self, count: int, group: str | None = None) -> list[str]:
        """Nodes that join Ready at once."""
        return self.call(lambda: self.cluster.add_nodes(count, group))

    def join_nodes(
        self,
        count: int = 1,
        group: str | None = None,
        *,
        ready_after: float | None = None,
        taints_removed_after: float | None = None,
        startup_taints: list[dict[str, Any]] | None = None,
        lifetime: float | None = None,
    ) -> list[str]:
        """Nodes that join like an autoscaler's (kubesim/autoscaler.py): NotReady with the
        not-ready and startup taints, Ready after `ready_after` simulated seconds, startup taints
        removed `taints_removed_after` later, deleted after `lifetime`. Omitted: the scenario's
        `autoscaler:` settings."""
        from kubesim.scenario import Taint

        taints = (
            None if startup_taints is None else [Taint.model_validate(t) for t in startup_taints]
        )
        return self.call(
            lambda: self.cluster.join_nodes(
                count,
                group,
                ready_after=ready_after,
                taints_removed_after=taints_removed_after,
                startup_taints=taints,
                lifetime=lifetime,
            )
        )

    def leave_nodes(self, names: list[str] | None = None, count: int | None = None) -> list[str]:
        """Scale down the named nodes, or the `count` oldest joined nodes still present."""
        return self.call(lambda: self.cluster.leave_nodes(names, count))

    def autoscaler_report(self) -> dict[str, Any]:
        """Joined nodes with their join, Ready, untainted and leave times (simulated and wall)."""
        from kubesim import autoscaler

        return self.call(lambda: autoscaler.report(self.cluster))

    # -- lifecycle --------------------------------------------------------------------------
    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self._run(self._server.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> SimHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> SimHandle:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def start_sim(
    nodes: int | None = None,
    scenario: str | Path | dict[str, Any] | Scenario | None = None,
    time_scale: float = 1.0,
    seed: int = 0,
    port: int = 0,
    kubeconfig_path: str | Path | None = None,
) -> SimHandle:
    """Start kubesim in a background thread; `nodes=None` keeps the scenario's own counts
    (the default scenario has 50)."""
    server = SimServer(scenario, nodes=nodes, seed=seed, time_scale=time_scale, port=port)
    loop = asyncio.new_event_loop()
    ready: Future[None] = Future()

    def main() -> None:
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            await server.start()

        try:
            loop.run_until_complete(boot())
        except BaseException as e:
            ready.set_exception(e)
            loop.close()
            return
        ready.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=main, name="kubesim", daemon=True)
    thread.start()
    ready.result(timeout=120)
    tmpdir = None
    if kubeconfig_path is None:
        tmpdir = Path(tempfile.mkdtemp(prefix="kubesim-"))
        kubeconfig_path = tmpdir / "kubeconfig"
    path = write_kubeconfig(kubeconfig_path, server.url)
    return SimHandle(server, loop, thread, path, tmpdir)


def sim_fixture(
    nodes: int | None = None,
    scenario: str | Path | dict[str, Any] | Scenario | None = None,
    time_scale: float = 1.0,
    seed: int = 0,
    scope: str = "function",
    name: str | None = None,
) -> Any:
    """A pytest fixture yielding a fresh `SimHandle`:

    from kubesim.testing import sim_fixture
    sim = sim_fixture(nodes=20, time_scale=50)

    def test_x(sim): ...
    """

    @pytest.fixture(scope=scope, name=name)  # type: ignore[call-overload]
    def _sim() -> Iterator[SimHandle]:
        handle = start_sim(nodes=nodes, scenario=scenario, time_scale=time_scale, seed=seed)
        try:
            yield handle
        finally:
            handle.stop()

    return _sim


@pytest.fixture
def kubesim_factory() -> Iterator[Callable[..., SimHandle]]:
    """Start any number of sims with `kubesim_factory(nodes=..., scenario=..., time_scale=...)`;
    all stop at teardown. Use from tests/<area>/conftest.py: `from kubesim.testing import
    kubesim_factory  # noqa: F401`."""
    handles: list[SimHandle] = []

    def make(**kwargs: Any) -> SimHandle:
        h = start_sim(**kwargs)
        handles.append(h)
        return h

    yield make
    for h in handles:
        h.stop()
