"""Records callback-request breaches (`router.flows.callbacks.fire_due_callbacks`)."""

from __future__ import annotations

import asyncio

from router.flows.callbacks import fire_due_callbacks
from router.runtime import Runtime
from router.workers.loop import every


async def run_scheduler(rt: Runtime, stop: asyncio.Event) -> None:
    """Fire due callbacks, then wait for the poll interval (`sla_wake` only cuts it short at
    shutdown). A breach that falls due between polls is recorded at most `worker_poll_s`
    late, and still only once."""

    async def once() -> None:
        await fire_due_callbacks(rt)

    await every(
        "callback scheduler batch",
        once,
        lambda _: rt.sla_wake.wait(rt.settings.worker_poll_s),
        stop,
    )
