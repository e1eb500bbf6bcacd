"""Before you start and setting up a namespace, as the runbook says: the health check,
registering the search attributes on a new namespace (twice, harmlessly), and the Web UI's list
filters over them, which the server accepts."""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from pathlib import Path

import pytest

from common.temporal import SearchAttr

from .conftest import TYPE_NAMES, Ops
from .runbook import RUNBOOK

# The runbook blocks this module runs (its last test checks it).
BLOCKS = frozenset(
    {"health", "create-namespace", "list-search-attributes", "register-search-attributes"}
)


@pytest.mark.integration
async def test_health(ops: Ops) -> None:
    assert "SERVING" in (await ops.run.run("health")).stdout


@pytest.mark.integration
async def test_register_search_attributes_on_a_new_namespace(ops: Ops) -> None:
    r = ops.run
    fresh = f"runbook-new-{uuid.uuid4().hex[:8]}"
    await r.run("create-namespace", IPS_NAMESPACE=fresh)
    for _ in range(100):
        listed = await r.run("list-search-attributes", check=False, TEMPORAL_NAMESPACE=fresh)
        if listed.returncode == 0:
            break
        await asyncio.sleep(0.2)
    assert not any(a.value in listed.stdout for a in SearchAttr)
    await r.run("register-search-attributes", TEMPORAL_NAMESPACE=fresh)
    await r.run("register-search-attributes", TEMPORAL_NAMESPACE=fresh)  # harmless again
    rows: dict[str, str] = {}
    for _ in range(50):  # the frontend's search-attribute cache catches up within seconds
        listed = await r.run("list-search-attributes", TEMPORAL_NAMESPACE=fresh)
        rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:]}
        if all(a.value in rows for a in SearchAttr):
            break
        await asyncio.sleep(0.2)
    assert {a.value: rows.get(a.value) for a in SearchAttr} == {
        a.value: TYPE_NAMES[a.indexed_type] for a in SearchAttr
    }


@pytest.mark.integration
async def test_web_ui_queries_are_valid(ops: Ops) -> None:
    """The list filters the runbook gives for the Web UI are accepted by the server."""
    text = RUNBOOK.read_text()
    section = text[
        text.index("## Finding a task in the Web UI") : text.index("## The temporal CLI")
    ]
    queries = re.findall(r"`(Ips[^`]+)`", section)
    assert len(queries) >= 2, queries
    for query in queries:
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "temporal"),
            "workflow",
            "count",
            "--query",
            query,
            env=ops.run.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, f"{query}: {err.decode()}"
        assert out.decode().startswith("Total: "), out


@pytest.mark.integration
async def test_ran_exactly_its_blocks(ops: Ops) -> None:
    """Last in the module: it ran each of BLOCKS, and no other block."""
    assert ops.run.exercised == BLOCKS
