"""Who may reach what: a conversation (or contact) is fetched only through the caller's tier,
and anything out of reach is a 404 that reveals nothing (410 for the agent it moved away
from). Also the one row-locking helper (PostgreSQL locks; SQLite has one writer)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, event, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from models import Conversation, Event, Queue
from router.auth import Principal, can_read_tier
from router.errors import ConversationMoved, ConversationNotFound, Forbidden, NotFound
from router.repo.events import write_pending
from router.repo.queues import queue_of

S = TypeVar("S", bound=Select[Any])


def is_postgres(session: AsyncSession) -> bool:
    """Row locks and JSONB exist only on PostgreSQL (SQLite serialises writers itself)."""
    return session.bind is not None and session.bind.dialect.name == "postgresql"


def locked(session: AsyncSession, stmt: S, **for_update: Any) -> S:
    """`stmt` with FOR UPDATE (and its options, e.g. skip_locked) on PostgreSQL; unchanged
    on SQLite, where the single writer already serialises the unit of work."""
    return stmt.with_for_update(**for_update) if is_postgres(session) else stmt


# Conversation rows this transaction has locked FOR UPDATE (session.info key), so a later step
# of the same unit of work (the SLA timers) does not lock them a second time.
_LOCKED = "careline.access.locked_conversations"


def hold_lock(session: AsyncSession, conv_id: int) -> None:
    """Record that this transaction holds `conv_id`'s row lock (or inserted the row)."""
    session.info.setdefault(_LOCKED, set()).add(conv_id)


def holds_lock(session: AsyncSession, conv_id: int) -> bool:
    return conv_id in session.info.get(_LOCKED, ())


@event.listens_for(Session, "after_transaction_end")
def _forget_locks(session: Session, transaction: SessionTransaction) -> None:
    # A rolled-back savepoint releases the locks taken inside it, so any transaction or
    # savepoint ending forgets them all: at worst a later step locks again (harmless).
    if transaction.nested or transaction.parent is None:  # not a flush's subtransaction
        session.info.pop(_LOCKED, None)


async def readable_queue_ids(session: AsyncSession, p: Principal) -> list[int]:
    return list(await session.scalars(select(Queue.id).where(Queue.tier <= p.max_tier)))


async def visible_conversations(session: AsyncSession, p: Principal) -> ColumnElement[bool]:
    """The conversations the caller may read: the one rule the list and search both use."""
    visible = await readable_queue_ids(session, p)
    return or_(Conversation.queue_id.in_(visible), Conversation.queue_id.is_(None))


async def get_conversation(
    session: AsyncSession, p: Principal, conv_id: int, *, for_update: bool = False
) -> Conversation:
    """The conversation if the caller may read it; otherwise 404, so ids leak nothing."""
    stmt = select(Conversation).where(Conversation.id == conv_id)
    if for_update:
        stmt = locked(session, stmt)
    conv = await session.scalar(stmt)
    if conv is None:
        raise ConversationNotFound(f"conversation {conv_id} not found")
    q = await queue_of(session, conv)
    if not can_read_tier(p, q.tier if q else 1):
        await _raise_if_moved_from(session, p, conv_id)
        raise ConversationNotFound(f"conversation {conv_id} not found")
    return conv


async def _raise_if_moved_from(session: AsyncSession, p: Principal, conv_id: int) -> None:
    """An agent whose conversation routing moved out of their reach learns why (410), once
    told by a `conversation.moved` event; anyone else still gets a 404 that reveals nothing."""
    if p.agent_id is None:
        return
    await write_pending(session)  # this transaction's own events too
    moved = await session.scalars(
        select(Event)
        .where(Event.conversation_id == conv_id, Event.type == "conversation.moved")
        .order_by(Event.id.desc())
        .limit(20)
    )
    for ev in moved:
        data = ev.data or {}
        if data.get("to_agent_id") == p.agent_id:
            reason = str(data.get("reason") or "moved")
            raise ConversationMoved(
                f"conversation {conv_id} moved to {data.get('queue')}: {reason}; "
                "it is no longer assigned to you",
                extra={"moved_to_queue": data.get("queue"), "reason": reason},
            )


async def require_visible_contact(session: AsyncSession, p: Principal, contact_id: int) -> None:
    if p.max_tier == 0:
        raise Forbidden("this token may not read contacts")
    if p.max_tier >= 2:
        return
    # A first-line agent sees a contact only through a conversation they may read.
    visible = await readable_queue_ids(session, p)
    n = await session.scalar(
        select(func.count())
        .select_from(Conversation)
        .where(
            Conversation.contact_id == contact_id,
            or_(Conversation.queue_id.in_(visible), Conversation.queue_id.is_(None)),
        )
    )
    if not n:
        raise NotFound(f"contact {contact_id} not found")
