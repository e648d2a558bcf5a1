"""Test helpers: wait on conditions with a deadline, never on bare sleeps."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any


async def until(
    predicate: Callable[[], object],
    timeout: float = 5.0,  # noqa: ASYNC109 - the deadline is the point
    *,
    interval: float = 0.01,
    message: str = "",
) -> Any:
    """Poll ``predicate`` (sync or async) until it gives a truthy value, and return it.

    Fails the test with an AssertionError when ``timeout`` seconds pass first; the last
    value seen is in the message.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() >= deadline:
            what = message or getattr(predicate, "__name__", "condition")
            raise AssertionError(f"{what} not met within {timeout:g} s (last value: {value!r})")
        await asyncio.sleep(interval)
