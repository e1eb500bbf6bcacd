"""Issue 13, bug 2: the API accepts tasks before any worker has run.

On a first deploy (or while every worker is down) the search attributes were registered by
nobody, and the API answered every POST with 502 "no mapping defined for search attribute".
The API now registers them itself at its first connection (idempotently, racing replicas
included); where the namespace refuses, /readyz says which are missing and how to add them.
Each test uses a namespace of its own on the session dev server, with no attribute in it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
    RemoveSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from common.search_attributes import (
    SearchAttributesMissing,
    ensure_search_attributes,
    register_commands,
)
from common.temporal import SearchAttr
from tests.api.testlib import TASKS, api_settings, new_queue, serve_api
from tests.stack import KNOWN_SCENARIO, _spawn, _wait_http, free_port, fresh_namespace, run_stack
from tests.waiting import async_wait_until, wait_until

pytestmark = pytest.mark.integration

EXPECTED = {a.value: a.indexed_type for a in SearchAttr}


async def custom_attributes(client: Client, namespace: str) -> dict[str, Any]:
    resp = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return dict(resp.custom_attributes)


async def test_concurrent_registrations_all_succeed(dev_client: Client) -> None:
    """Six replicas registering at the same moment, each with its own connection: every one
    returns, and the namespace ends with exactly our attributes, with our types."""
    namespace = await fresh_namespace(dev_client)
    address = dev_client.service_client.config.target_host
    clients = [await Client.connect(address, namespace=namespace) for _ in range(6)]
    results = await asyncio.gather(*(ensure_search_attributes(c, namespace) for c in clients))
    added = [name for r in results for name in r]
    assert set(added) == set(EXPECTED)  # someone added each one (maybe several did)
    assert {k: v for k, v in (await custom_attributes(dev_client, namespace)).items()} == EXPECTED
    assert await ensure_search_attributes(clients[0], namespace) == []  # idempotent


def test_api_first_then_worker_completes_the_task(dev_address: str, tmp_path: Path) -> None:
    """A first deploy: kubesim and two API replicas, no worker has ever run in the namespace.
    POST answers 201 pending; a worker started afterwards runs the task to completion."""

    async def setup() -> str:
        client = await Client.connect(dev_address)
        return await fresh_namespace(client)

    namespace = asyncio.run(setup())
    extra = {"TEMPORAL_NAMESPACE": namespace}
    with run_stack(dev_address, tmp_path, extra_env=extra, with_worker=False) as stack:
        # A second replica, racing the first on registration.
        port = free_port()
        second = _spawn(
            "api-2", ["api"], {**stack.procs["api"].env, "SERVER_PORT": str(port)}, tmp_path
        )
        stack.procs["api-2"] = second
        _wait_http(second, f"http://127.0.0.1:{port}/readyz", time.monotonic() + 60)
        assert "worker" not in stack.procs
        body = {"images": ["nginx:latest"], "batchSize": 2, "nodeSelector": {"workload": "compute"}}
        created = httpx.post(f"{stack.url}{TASKS}", json=body, timeout=30)
        assert created.status_code == 201, created.text
        task = created.json()
        assert task["status"] == "pending"
        also = httpx.post(f"http://127.0.0.1:{port}{TASKS}", json=body, timeout=30)
        assert also.status_code == 201, also.text
        # Still pending: nothing runs it until a worker comes.
        got = httpx.get(f"{stack.url}{TASKS}/{task['taskId']}", timeout=30)
        assert got.status_code == 200 and got.json()["status"] == "pending", got.text

        stack.start_worker()
        deadline = time.monotonic() + 120
        for task_id in (task["taskId"], also.json()["taskId"]):
            seen: dict[str, Any] = {}

            def final(task_id: str = task_id, seen: dict[str, Any] = seen) -> bool:
                seen.update(httpx.get(f"{stack.url}{TASKS}/{task_id}", timeout=30).json())
                return seen["status"] in ("completed", "failed", "cancelled")

            wait_until(
                final,
                max(0.0, deadline - time.monotonic()),
                interval=0.5,
                message=lambda seen=seen: str(seen),
            )
            view = seen
            assert view["status"] == "completed", view
            compute = sum(
                g["count"]
                for g in KNOWN_SCENARIO["nodeGroups"]
                if g["labels"].get("workload") == "compute"
            )
            progress = view["progress"]
            assert progress["totalNodes"] == compute, view
            assert progress["failedNodes"] == 0, view
        assert "registered search attributes" in stack.logs("api") + stack.logs("api-2")


async def test_readyz_names_what_the_namespace_refuses(dev_client: Client) -> None:
    """Where the server refuses to add them, /readyz is 503 with the missing names and the
    command; once an operator makes room, the next probe registers them and turns ready.

    The dev server's visibility allows ten custom Keyword attributes: ten of someone else's
    make the server refuse ours for real (Temporal Cloud refuses through its API instead)."""
    namespace = await fresh_namespace(dev_client)
    others = {f"Other{i}": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for i in range(10)}
    await dev_client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace=namespace, search_attributes=others)
    )
    queue = new_queue("ips-first")
    with serve_api(api_settings(dev_client.service_client.config.target_host, queue,
                                temporal_namespace=namespace,
                                ips_api_tokens="0p3r4t0r")) as api:  # fmt: skip
        headers = {"Authorization": "Bearer 0p3r4t0r"}
        async with httpx.AsyncClient(base_url=api.url, timeout=30, headers=headers) as http:
            # An anonymous probe learns only that the API is not ready (issue 14): the names and
            # commands go to the logs and to token holders.
            anonymous = await http.get("/readyz", headers={"Authorization": ""})
            assert anonymous.status_code == 503, anonymous.text
            assert "IpsStatus" not in anonymous.text, anonymous.text
            r = await http.get("/readyz")
            assert r.status_code == 503, r.text
            details = r.json()["details"]
            assert "IpsStatus" in details and "IpsIdempotencyKey" in details, details
            expected = register_commands(namespace, ["IpsIdempotencyKey"])
            assert expected.split(" && ")[0].split(" (")[0] in details, details
            assert "tcld namespace search-attributes add" in details
            # A POST is a 503 (retry later) pointing at /readyz, not a 502.
            body = {"images": ["nginx:latest"], "batchSize": 1}
            post = await http.post(TASKS, json=body)
            assert post.status_code == 503, post.text
            assert "/readyz" in post.json()["details"]

            await dev_client.operator_service.remove_search_attributes(
                RemoveSearchAttributesRequest(namespace=namespace, search_attributes=list(others))
            )
            last: list[httpx.Response] = []

            async def ready() -> bool:
                last[:] = [await http.get("/readyz")]
                return last[0].status_code == 200

            await async_wait_until(ready, 30, interval=0.5, message=lambda: last[0].text)
            assert set(EXPECTED) <= set(await custom_attributes(dev_client, namespace))


class _RefusingOperator:
    """Temporal Cloud's answer to AddSearchAttributes from a namespace's client."""

    def __init__(self, present: dict[str, Any]) -> None:
        self.present = present
        self.adds = 0

    async def list_search_attributes(self, req: ListSearchAttributesRequest) -> Any:
        return type("Resp", (), {"custom_attributes": self.present})()

    async def add_search_attributes(self, req: AddSearchAttributesRequest) -> None:
        self.adds += 1
        raise RPCError("Request unauthorized.", RPCStatusCode.PERMISSION_DENIED, b"")


async def test_permission_denied_names_attributes_and_commands() -> None:
    operator = _RefusingOperator({"IpsStatus": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD})
    client: Any = type("C", (), {"operator_service": operator})()
    with pytest.raises(SearchAttributesMissing) as err:
        await ensure_search_attributes(client, "ips.acct")
    assert operator.adds == 1  # a refusal is not retried
    assert "IpsStatus" not in err.value.missing
    assert err.value.missing == sorted(set(EXPECTED) - {"IpsStatus"})
    text = str(err.value)
    assert "PERMISSION_DENIED" in text
    create = "temporal operator search-attribute create --namespace ips.acct"
    assert f"{create} --name IpsTotalNodes --type Int" in text
    assert "--search-attribute IpsWarmNodes=Double" in text
