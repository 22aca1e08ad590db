"""Events: rows in `events`, the audit trail (`router.bus` wakes the live streams).

The table is the truth and its ids are the stream cursor, so a client that reconnects with
`Last-Event-ID` misses nothing and every instance serves the same stream. The bus only wakes
local subscribers early after a commit; they also poll, which covers other instances.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from models import Conversation, Event, Queue
from router.repo.queues import queue_of
from router.repo.savepoints import follow_savepoints
from router.wake import wake_after_commit

# Events of this unit of work whose tier follows a conversation's (session.info key):
# conversation events with no explicit tier, and contact events.
_FOLLOWING = "careline.events.following"
# Events recorded and not yet written (a session.info key): a savepoint that rolls back
# drops what was recorded inside it, a rollback all of them.
_UNWRITTEN = follow_savepoints("careline.events.unwritten")
_COLUMNS = ("type", "conversation_id", "contact_id", "agent_id", "queue", "tier", "data")


async def record(
    session: AsyncSession,
    type_: str,
    *,
    conversation: Conversation | None = None,
    queue: str | None = None,
    tier: int | None = None,
    agent_id: int | None = None,
    contact_id: int | None = None,
    data: dict[str, Any] | None = None,
    new_contact: bool = False,
) -> Event:
    """Record an event. A contact event without an explicit tier gets the tier of the contact's
    most sensitive conversation, and is raised (`settle`) when one of this unit of work's
    conversations of that contact is routed higher: an event about a person never tells the
    first line that a second-line conversation exists."""
    following = False
    if tier is None:
        if conversation is None and contact_id is not None:
            # A contact created in this unit of work has no conversation yet: tier 1.
            tier = 1 if new_contact else await contact_tier(session, contact_id)
            following = True
        else:
            tier = 1
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
    # Written at the transaction's commit, all of them in one statement (`_write_at_commit`):
    # an ingest records three or four, and a group commit's batch many more.
    _unwritten(session.sync_session).append(ev)
    if following:
        follow(session, ev)
    wake_after_commit(session, "events")  # streams here and on other instances
    return ev


def _unwritten(session: Session) -> list[Event]:
    found: list[Event] | None = session.info.get(_UNWRITTEN)
    if found is None:
        found = session.info[_UNWRITTEN] = []
    return found


def _write(session: Session) -> None:
    """Insert the recorded events, in the order they were recorded (their ids, the stream's
    cursor, follow that order)."""
    pending: list[Event] | None = session.info.get(_UNWRITTEN)
    if not pending:
        return
    # The rows they refer to first: a batch's writes may still be pending (`repo.batch`).
    session.flush()
    rows = [{c: getattr(ev, c) for c in _COLUMNS} for ev in pending]
    pending.clear()
    session.connection().execute(insert(Event), rows)


async def write_pending(session: AsyncSession) -> None:
    """Write this transaction's recorded events now: before a statement that reads or
    updates `events` (an export, a merge, a count), so it sees them."""
    if session.sync_session.info.get(_UNWRITTEN):
        await session.run_sync(_write)


@event.listens_for(Session, "before_commit")
def _write_at_commit(session: Session) -> None:
    if not session.in_nested_transaction():  # a savepoint's release is not the commit
        _write(session)


async def contact_tier(session: AsyncSession, contact_id: int) -> int:
    """The highest queue tier among the contact's conversations (1 without any)."""
    top = await session.scalar(
        select(func.max(Queue.tier))
        .select_from(Conversation)
        .join(Queue, Queue.id == Conversation.queue_id)
        .where(Conversation.contact_id == contact_id)
    )
    return int(top or 1)


def follow(session: AsyncSession, ev: Event) -> None:
    """Let `settle` raise this event's tier for the rest of the unit of work."""
    session.info.setdefault(_FOLLOWING, []).append(ev)


def settle(session: AsyncSession, conversation: Conversation, tier: int) -> None:
    """The conversation now has `tier`: raise this unit of work's following events about it
    (or about its contact) to at least that, so what the transaction commits carries the
    conversation's final tier (an event recorded before routing moved it up included)."""
    for ev in session.info.get(_FOLLOWING, ()):
        concerns = (
            ev.conversation_id == conversation.id
            if ev.conversation_id is not None
            else ev.contact_id is not None and ev.contact_id == conversation.contact_id
        )
        if concerns and ev.tier < tier:
            ev.tier = tier


async def conv_event(
    session: AsyncSession,
    type_: str,
    conv: Conversation,
    *,
    agent_id: int | None = None,
    data: dict[str, Any] | None = None,
    tier: int | None = None,
) -> None:
    """Record an event about a conversation, visible to whoever may read its queue.

    Without an explicit `tier` (events addressed to the first line pass 1) the event follows
    the conversation: this unit of work's earlier events about it and its contact are raised
    to its current tier, so `conversation.created` and `contact.created`, recorded before
    routing, commit with the tier routing chose."""
    q = await queue_of(session, conv)
    current = q.tier if q else 1
    ev = await record(
        session,
        type_,
        conversation=conv,
        queue=q.name if q else None,
        tier=tier if tier is not None else current,
        agent_id=agent_id,
        data=data,
    )
    if tier is None:
        follow(session, ev)
    settle(session, conv, current)


async def crisis_flagged(session: AsyncSession, conversation_id: int) -> bool:
    """Whether the supervisor's crisis alert (`crisis.detected`) already fired for this
    conversation: it fires once, however many crisis messages or manual tags follow."""
    await write_pending(session)
    n = await session.scalar(
        select(func.count())
        .select_from(Event)
        .where(Event.conversation_id == conversation_id, Event.type == "crisis.detected")
    )
    return bool(n)
