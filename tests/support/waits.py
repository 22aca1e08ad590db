"""Waiting on a condition instead of sleeping a fixed time (fixed sleeps race on a slow,
loaded machine: too short there, and needlessly long everywhere else)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def wait_for(
    predicate: Callable[[], Awaitable[T]],
    *,
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    what: str = ...,
) -> T: ...


@overload
async def wait_for(
    predicate: Callable[[], T],
    *,
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    what: str = ...,
) -> T: ...


async def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 (a polling deadline, not a cancellation)
    interval: float = 0.02,
    what: str = "the condition",
) -> Any:
    """Poll `predicate` (sync or async) every `interval` seconds until it returns something
    truthy, and return that; fail with `what` if it has not within `timeout` seconds.

    The predicate is always tried once more after the deadline, so a loop stalled past it
    (a loaded machine) does not fail a condition that did become true."""
    deadline = time.monotonic() + timeout
    while True:
        expired = time.monotonic() >= deadline
        outcome = predicate()
        result = await outcome if inspect.isawaitable(outcome) else outcome
        if result:
            return result
        if expired:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)
