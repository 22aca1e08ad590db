"""The one loop every background worker runs: do a round, log a failure without dying, wait."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from router.db import log_job_failure

log = logging.getLogger(__name__)
R = TypeVar("R")


async def every(
    job: str,
    once: Callable[[], Awaitable[R]],
    pause: Callable[[R | None], Awaitable[None]],
    stop: asyncio.Event,
) -> None:
    """Run `once` until `stop` is set, then `pause(result)` (the result is None after a
    failure, which is logged with its kind: a database outage must not kill the worker)."""
    while not stop.is_set():
        result: R | None
        try:
            result = await once()
        except Exception as exc:
            log_job_failure(log, job, exc)
            result = None
        await pause(result)
