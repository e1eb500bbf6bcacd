"""One way for a test to wait on a condition: poll it until it holds or the time is up.

`condition` returns something truthy once it holds (returned to the caller), or something falsy.
`message` is a string or a callable that builds the failure text when the time is up, so the
failure can say what was last seen. An exception raised by `condition` propagates unless its type is
listed in `ignore` (e.g. an API that is briefly down).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

Message = str | Callable[[], str]


def _text(message: Message) -> str:
    return message() if callable(message) else message


def wait_until(
    condition: Callable[[], T | None],
    timeout: float,
    interval: float = 0.2,
    message: Message = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll `condition` every `interval` s until truthy (returned) or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except ignore:
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {timeout}s: {_text(message)}")
        time.sleep(interval)


async def async_wait_until(
    condition: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    timeout: float,  # noqa: ASYNC109 (a polling deadline, not a cancellation scope)
    interval: float = 0.1,
    message: Message = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """`wait_until` from a coroutine: sleeps without blocking the event loop. `condition` may be
    async or a plain (cheap, non-blocking) function."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
        except ignore:
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {timeout}s: {_text(message)}")
        await asyncio.sleep(interval)
