"""tests/waiting.py: the one wait-until helper every test uses."""

from __future__ import annotations

import asyncio

import pytest

from tests.waiting import async_wait_until, wait_until

pytestmark = pytest.mark.unit


def test_returns_the_first_truthy_value() -> None:
    values = iter([None, 0, "", "ready"])
    assert wait_until(lambda: next(values), 5, interval=0.001) == "ready"


def test_times_out_saying_what_was_last_seen() -> None:
    seen: list[int] = []

    def never() -> bool:
        seen.append(len(seen))
        return False

    with pytest.raises(AssertionError, match=r"after 0\.05s: last seen \d+"):
        wait_until(never, 0.05, interval=0.01, message=lambda: f"last seen {seen[-1]}")
    assert len(seen) >= 2  # polled more than once, and once more at the deadline


def test_ignored_errors_are_retried_others_propagate() -> None:
    calls = iter([ConnectionError("down"), ConnectionError("down"), True])

    def flaky() -> bool:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_until(flaky, 5, interval=0.001, ignore=(ConnectionError,)) is True
    with pytest.raises(ValueError):
        wait_until(lambda: int("x"), 5, ignore=(ConnectionError,))


def test_async_twin() -> None:
    values = iter([False, False, 7])

    async def cond() -> int | bool:
        return next(values)

    assert asyncio.run(async_wait_until(cond, 5, interval=0.001)) == 7
    plain = iter([None, "sync too"])
    assert asyncio.run(async_wait_until(lambda: next(plain), 5, interval=0.001)) == "sync too"

    async def never() -> bool:
        return False

    with pytest.raises(AssertionError, match=r"after 0\.02s: still nothing"):
        asyncio.run(async_wait_until(never, 0.02, interval=0.005, message="still nothing"))
