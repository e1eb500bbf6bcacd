"""The environment the runbook tests run docs/operations.md in: a real Temporal dev server, the
real engine (in-process workers) and kubesim.

Each test module gets its own (the fixtures are module-scoped): a kubesim, a Temporal namespace of
its own making and two engines on it, so the runbook's namespace-wide commands (list, count,
batch cancel) see only that module's tasks, whatever ran before. Each module declares the
runbook blocks it runs (`BLOCKS`) and checks them last; test_runbook_document.py checks that
between them the modules run every block.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client

from common.search_attributes import ensure_search_attributes
from common.settings import Settings
from common.temporal import connect
from kubesim.testing import SimHandle, start_sim
from tests.deploy.engine_harness import Engine, run_engine

from .runbook import Runner

HUGE = "registry.example.com/ips-runbook/huge:1"  # pulls for minutes: keeps a batch running
TYPE_NAMES = {
    IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
    IndexedValueType.INDEXED_VALUE_TYPE_INT: "Int",
    IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE: "Double",
}


@dataclass
class Ops:
    client: Client
    engine: Engine
    bad_engine: Engine
    run: Runner
    sim: SimHandle
    namespace: str
    tmp: Path


async def _namespace(address: str, dev_client: Client) -> tuple[str, Client]:
    """A fresh Temporal namespace with our search attributes, ready to take workflows."""
    name = f"runbook-{uuid.uuid4().hex[:8]}"
    await dev_client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    client = await connect(Settings(temporal_address=address, temporal_namespace=name))
    for _ in range(100):  # the frontend's namespace cache catches up within seconds
        try:
            await ensure_search_attributes(client, name)
            await client.count_workflows()
            return name, client
        except Exception:
            await asyncio.sleep(0.2)
    raise AssertionError(f"namespace {name} never became usable")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    scenario = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "kubesim/scenarios/default.yaml").read_text()
    )
    scenario["images"].append({"name": HUGE, "size": "4000GiB"})
    with start_sim(nodes=8, scenario=scenario, time_scale=20) as handle:
        yield handle


@pytest.fixture(scope="module")
async def ops(
    dev_client: Client, dev_address: str, sim: SimHandle, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Ops]:
    namespace, client = await _namespace(dev_address, dev_client)
    tmp = tmp_path_factory.mktemp("runbook")
    run = Runner(
        {
            "TEMPORAL_ADDRESS": dev_address,
            "TEMPORAL_NAMESPACE": namespace,
            "K8S_NAMESPACE": "default",
            "KUBECONFIG": str(sim.kubeconfig_path),
        },
        tmp,
    )
    async with (
        run_engine(client, sim, job_ttl_seconds=3600) as engine,
        run_engine(client, sim, k8s_namespace="absent") as bad_engine,
    ):
        yield Ops(client, engine, bad_engine, run, sim, namespace, tmp)
