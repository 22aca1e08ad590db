"""Queue rows: looked up by id or name, cached per database for the life of the process."""

from __future__ import annotations

from weakref import WeakKeyDictionary

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from models import Conversation, Queue
from router.errors import Conflict

# Queues mirror the policy and are synced once at start-up (`bootstrap.sync_queues`), so
# their rows are kept per database for the life of the process: a message then costs no
# queue look-up. Detached copies; callers only read them.
_QUEUES: WeakKeyDictionary[Engine, dict[int | str, Queue]] = WeakKeyDictionary()


def _queue_cache(session: AsyncSession) -> dict[int | str, Queue]:
    return _QUEUES.setdefault(session.get_bind().engine, {})


def forget_queues(engine: AsyncEngine) -> None:
    """Drop the cached queue rows (after `sync_queues` changed them)."""
    _QUEUES.pop(engine.sync_engine, None)


async def _load_queue(session: AsyncSession, key: int | str) -> Queue | None:
    cache = _queue_cache(session)
    q = cache.get(key)
    if q is None:
        where = Queue.id == key if isinstance(key, int) else Queue.name == key
        row = await session.scalar(select(Queue).where(where))
        if row is None:
            return None
        # A copy in no session: shared by every unit of work of this process.
        q = Queue(
            id=row.id, name=row.name, title=row.title, tier=row.tier, created_at=row.created_at
        )
        cache[q.id] = cache[q.name] = q
    return q


async def queue_of(session: AsyncSession, conv: Conversation) -> Queue | None:
    if conv.queue_id is None:
        return None
    return await _load_queue(session, conv.queue_id)


async def queue_by_name(session: AsyncSession, name: str) -> Queue:
    q = await _load_queue(session, name)
    if q is None:
        raise Conflict(f"queue {name!r} does not exist")
    return q
