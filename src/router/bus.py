"""An in-process wake-up for waiters (event streams, workers): no payload, they re-read the
table, and they also poll, which covers other instances."""

from __future__ import annotations

import asyncio
import contextlib


class EventBus:
    """Wakes waiting stream subscribers; carries no payload (they read the table)."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def wake(self) -> None:
        ev, self._event = self._event, None
        if ev is not None:
            ev.set()

    async def wait(self, seconds: float) -> None:
        if self._event is None:
            self._event = asyncio.Event()
        ev = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ev.wait(), seconds)
