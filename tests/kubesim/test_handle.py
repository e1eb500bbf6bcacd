"""The Python handle other test areas use: fixture factory, async close, thread safety."""

from __future__ import annotations

import asyncio
import threading

import pytest
from kubernetes import client, config

from kubesim.testing import SimHandle, sim_fixture, start_sim

pytestmark = pytest.mark.integration

small_sim = sim_fixture(
    nodes=4, scenario={"nodeGroups": [{"name": "w", "count": 4}]}, time_scale=100
)


def test_sim_fixture_factory(small_sim: SimHandle) -> None:
    api = client.CoreV1Api(
        config.new_client_from_config(config_file=str(small_sim.kubeconfig_path))
    )
    assert [n.metadata.name for n in api.list_node().items] == ["w-1", "w-2", "w-3", "w-4"]
    assert small_sim.stats()["objects"]["Node"] == 4


def test_kubesim_factory(kubesim_factory) -> None:  # type: ignore[no-untyped-def]
    a = kubesim_factory(nodes=2, scenario={"nodeGroups": [{"name": "a", "count": 1}]})
    b = kubesim_factory(nodes=3)
    assert a.url != b.url
    assert len(a.objects("nodes")) == 2 and len(b.objects("nodes")) == 3


async def test_closable_from_async_code_and_not_starved() -> None:
    sim = start_sim(nodes=3, time_scale=100)
    async with sim:
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(sim.kubeconfig_path)))
        # A blocking client call from the test's own loop still gets answered by the sim thread.
        nodes = await asyncio.to_thread(api.list_node)
        assert len(nodes.items) == 3
    assert not sim._thread.is_alive()


def test_thread_safe_controls() -> None:
    with start_sim(nodes=10, time_scale=100) as sim:
        errors: list[BaseException] = []

        def flip(name: str) -> None:
            try:
                for i in range(20):
                    sim.set_node_ready(name, i % 2 == 1)
                    sim.stats()
            except BaseException as e:
                errors.append(e)

        names = [n["metadata"]["name"] for n in sim.objects("nodes")][:4]
        threads = [threading.Thread(target=flip, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        for n in sim.objects("nodes"):
            if n["metadata"]["name"] in names:
                assert n["status"]["conditions"][-1]["status"] == "True"
