"""Session-wide servers shared by every test area: never let the SDK download a server.

Area-specific fixtures live in the area's own conftest (tests/<area>/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from common import temporal as t

# Tests run as `.venv/bin/python -m pytest` need not have the venv activated: its console
# scripts (temporal, temporal-test-server, kubectl, ips) must still be found by subprocesses.
_VENV_BIN = str(Path(sys.executable).parent)
if _VENV_BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _VENV_BIN + os.pathsep + os.environ.get("PATH", "")

ALL_SEARCH_ATTRIBUTES = t.ALL_SEARCH_ATTRIBUTE_KEYS


def _exe(name: str) -> str:
    """The venv's copy first (the tests may run as .venv/bin/python without an activated venv)."""
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not on PATH; run the suite through `make test`")
    return path


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (in memory) with our search attributes registered."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=_exe("temporal"),
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def dev_client(dev_env: WorkflowEnvironment) -> Client:
    return dev_env.client


@pytest.fixture(scope="session")
def dev_address(dev_env: WorkflowEnvironment) -> str:
    """host:port of the session dev server, for subprocesses (worker, API) in integration tests."""
    return dev_env.client.service_client.config.target_host


@pytest.fixture(scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, for workflow unit tests with mocked activities."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=_exe("temporal-test-server"),
    )
    try:
        yield env
    finally:
        await env.shutdown()


# --- Fast or needs servers: every test is one or the other (`make test-fast` runs the fast) ---

# Fixtures that start a server (a Temporal server, kubesim, the API, a whole stack). pytest's
# `fixturenames` is the closure, so a test that asks for `dev_client` or `http` is caught too.
SERVER_FIXTURES = frozenset({"dev_env", "time_env", "sim", "chaos_stack", "api", "registry_tools"})
SERVER_MARKERS = frozenset({"integration", "image"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="only the tests that need no server (marked unit): `make test-fast`",
    )


def needs_servers(item: pytest.Item) -> bool | None:
    """The closest of the markers decides (a test's own over its module's): True for
    integration or image, False for unit, None when the test says neither."""
    for mark in item.iter_markers():
        if mark.name == "unit":
            return False
        if mark.name in SERVER_MARKERS:
            return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a test that says neither `unit` nor integration/image, and a `unit` test that
    asks for a server fixture; with --fast, keep only the unit tests. So `make test-fast`
    runs exactly the tests that need no server, and cannot silently miss one."""
    problems = []
    for item in items:
        kind = needs_servers(item)
        servers = sorted(SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())))
        if kind is None:
            problems.append(f"{item.nodeid}: mark it unit (no servers) or integration")
        elif servers and not kind:
            problems.append(f"{item.nodeid}: marked unit but uses {', '.join(servers)}")
    if problems:
        raise pytest.UsageError("tests must say whether they need servers:\n" + "\n".join(problems))
    if config.getoption("fast"):
        slow = [item for item in items if needs_servers(item)]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if not needs_servers(item)]
