"""Chaos fixtures: one real stack (`ips sim`, `ips worker`, `ips api`) shared by a module's
scenarios, each scenario on its own node group and with its own fresh image, so that their pull
counts and objects never mix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import TemporalServer
from tests.chaos.chaoslib import STACK_ENV, TIME_SCALE, Sim, group, scenario
from tests.stack import Stack, run_stack

GROUPS = {"kill": 200, "two": 60, "api": 60, "faults": 60, "nodes": 30, "storm": 40}


@pytest.fixture(scope="module")
def chaos_stack(dev_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work: Path = tmp_path_factory.mktemp("chaos")
    with run_stack(
        dev_address,
        work,
        scenario=scenario(*(group(n, c) for n, c in GROUPS.items())),
        time_scale=TIME_SCALE,
        extra_env=STACK_ENV,
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def sim(chaos_stack: Stack) -> Sim:
    return Sim(chaos_stack.sim_url)


@pytest.fixture
def temporal(tmp_path: Path) -> Iterator[TemporalServer]:
    """A Temporal server of the test's own (SQLite on disk), which the test may restart."""
    server = TemporalServer(tmp_path / "temporal", db_file=tmp_path / "temporal.db")
    server.start()
    try:
        yield server
    finally:
        server.stop()
