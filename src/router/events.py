"""Events: rows in `events` (the audit trail) plus an in-process wake-up for live streams.

The table is the truth and its ids are the stream cursor, so a client that reconnects with
`Last-Event-ID` misses nothing and every instance serves the same stream. The bus only wakes
local subscribers early after a commit; they also poll, which covers other instances.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models import Conversation, Event
from router.db import wake_after_commit


async def record(
    session: AsyncSession,
    type_: str,
    *,
    conversation: Conversation | None = None,
    queue: str | None = None,
    tier: int = 1,
    agent_id: int | None = None,
    contact_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    ev = Event(
        type=type_,
        conversation_id=conversation.id if conversation else None,
        contact_id=contact_id
        if contact_id is not None
        else (conversation.contact_id if conversation else None),
        agent_id=agent_id,
        queue=queue,
        tier=tier,
        data=data or {},
    )
    # No flush: events are inserted together with the next flush or the commit.
    session.add(ev)
    wake_after_commit(session, "events")  # streams here and on other instances
    return ev


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
