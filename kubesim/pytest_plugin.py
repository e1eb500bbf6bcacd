"""pytest fixtures for kubesim: `pytest_plugins = ["kubesim.pytest_plugin"]` in a conftest.

- `kubesim_factory`: call it with start_sim's arguments; every sim stops at teardown.
- `kubesim`: a function-scoped default sim (default scenario, 50 nodes, time scale 50).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kubesim.testing import SimHandle, kubesim_factory, start_sim

__all__ = ["kubesim", "kubesim_factory"]


@pytest.fixture
def kubesim() -> Iterator[SimHandle]:
    with start_sim(time_scale=50) as handle:
        yield handle
