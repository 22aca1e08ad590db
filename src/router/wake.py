"""What a commit wakes: a unit of work names the topics, `Database.session` delivers them
after its commit (here and, by NOTIFY, on every instance). No imports: the repositories that
record events and outbox items use it, and the engine module reads it."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

# What a commit can wake: live event streams and web chat sockets, and the outbox worker.
# (The SLA scheduler sleeps until its next deadline: a timer is never due at once.)
WAKE_TOPICS = frozenset({"events", "outbox"})
WAKE_KEY = "wake"  # session.info key


def wake_after_commit(session: AsyncSession, *topics: str) -> None:
    """Once this unit of work commits, wake `topics` here and on every instance."""
    session.info.setdefault(WAKE_KEY, set()).update(topics)


AFTER_COMMIT_KEY = "after_commit"  # session.info key


def after_commit(session: AsyncSession, fn: Callable[[], None]) -> None:
    """Call `fn` once this unit of work has committed, never if it rolls back: a count of
    what was stored must not count a group-commit batch that failed and was written again."""
    session.info.setdefault(AFTER_COMMIT_KEY, []).append(fn)
