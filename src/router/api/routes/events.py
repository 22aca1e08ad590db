"""Live event stream (server-sent events), resumable with `Last-Event-ID`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Header, Query, Request
from sqlalchemy import func, select
from sse_starlette.sse import EventSourceResponse

from models import Event
from models.schemas import MAX_ID
from router.api.deps import RuntimeDep, StreamAgentDep, still_valid

api_router = APIRouter(prefix="/api/v1", tags=["events"])


@api_router.get("/events")
async def stream_events(
    request: Request,
    p: StreamAgentDep,
    rt: RuntimeDep,
    after: int | None = Query(
        default=None, ge=0, le=MAX_ID, description="replay events after this id"
    ),
    last_event_id: str | None = Header(default=None, max_length=18),
    types: str | None = Query(default=None, max_length=500, description="comma-separated"),
) -> EventSourceResponse:
    """Server-sent events: `id` is the event id, `event` its type, `data` JSON.

    Without `after` or `Last-Event-ID` the stream starts now. A first-line agent only sees
    events of first-line queues. Events carry ids, never message text. The caller is checked
    again before each read, so a revoked token's stream ends within one wait (2 s).
    """
    cursor: int | None = after
    if cursor is None and last_event_id and last_event_id.isdigit():
        cursor = int(last_event_id)
    if cursor is None:
        async with rt.db.session() as session:
            cursor = int(await session.scalar(select(func.max(Event.id))) or 0)
    wanted = {t.strip() for t in types.split(",")} if types else None

    async def gen() -> AsyncIterator[dict[str, str]]:
        pos = cursor
        while not await request.is_disconnected():
            async with rt.db.session() as session:
                if not await still_valid(request, rt, session, p):
                    return
                rows = list(
                    await session.scalars(
                        select(Event)
                        .where(Event.id > pos, Event.tier <= p.max_tier)
                        .order_by(Event.id)
                        .limit(500)
                    )
                )
            for ev in rows:
                pos = ev.id
                if wanted and ev.type not in wanted:
                    continue
                yield {
                    "id": str(ev.id),
                    "event": ev.type,
                    "data": json.dumps(
                        {
                            "id": ev.id,
                            "type": ev.type,
                            "conversation_id": ev.conversation_id,
                            "contact_id": ev.contact_id,
                            "agent_id": ev.agent_id,
                            "queue": ev.queue,
                            "data": ev.data,
                            "created_at": ev.created_at.isoformat(),
                        }
                    ),
                }
            if len(rows) < 500:
                await rt.events.wait(2.0)

    return EventSourceResponse(gen(), ping=15)
