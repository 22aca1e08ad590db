"""What a group-commit batch reads once for all its units (the read-ahead snapshot).

A batch of inbound messages used to cost every unit the same look-ups: the sender's identity,
their live conversation (locked), its timers, the online agents and their loads. Before the
units run, `flows.ingest.read_ahead` loads these for the whole batch, one query each, and the
units take them from here instead of asking the database again.

An entry is only ever what this transaction would read itself: rows are loaded (and locked)
in this transaction, the units change the same ORM objects, and what a unit creates (an
identity, a conversation, a timer, an assignment) is recorded here as it happens. Anything
that could make an entry wrong drops it (a contact merge drops the conversations; a failed
savepoint drops the whole snapshot), and a missing entry means "ask the database", so the
snapshot is an optimisation that can only be absent, never stale. Outside a batch (SQLite, an
agent's request, a worker) there is no snapshot and every look-up runs as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from models import Contact, ContactIdentity, Conversation, OutboxItem, SlaTimer
from router.decide.assign import AgentLoad

_KEY = "careline.batch.snapshot"


@dataclass
class Snapshot:
    # (channel, external_id) → (conversation id, message id) of the stored copy, or None:
    # looked up and not stored (yet: a unit that stores it records it here).
    messages: dict[tuple[str, str], tuple[int, int] | None] = field(default_factory=dict)
    # (kind, value) → the identity, or None: looked up and absent.
    identities: dict[tuple[str, str], ContactIdentity | None] = field(default_factory=dict)
    # Strong references: the session's identity map only keeps weak ones.
    contacts: list[Contact] = field(default_factory=list)
    # (kind, value) → whether it was erased (looked up for senders with no identity yet).
    erased: dict[tuple[str, str], bool] = field(default_factory=dict)
    # contact id → the conversation a message continues (live, or resolved within the
    # reopen window, locked), or None: the contact has none.
    live: dict[int, Conversation | None] = field(default_factory=dict)
    conversations: list[Conversation] = field(default_factory=list)  # (strong references)
    # conversation id → its timers by kind (locked with the conversation).
    timers: dict[int, dict[str, SlaTimer]] = field(default_factory=dict)
    # tier (None: every tier) → the online agents and their open conversations.
    loads: dict[int | None, list[AgentLoad]] = field(default_factory=dict)
    # queue id → median handle time over the last 24 h (None: no data).
    medians: dict[int, float | None] = field(default_factory=dict)
    # outbox item id → the item (None: gone), for recording delivery outcomes.
    outbox: dict[int, OutboxItem | None] = field(default_factory=dict)
    # Rows read ahead that units find with `session.get` (strong references).
    held: list[object] = field(default_factory=list)


def start(session: AsyncSession) -> Snapshot:
    snap = session.info.get(_KEY)
    if not isinstance(snap, Snapshot):
        snap = Snapshot()
        session.info[_KEY] = snap
    return snap


def active(session: AsyncSession) -> Snapshot | None:
    snap = session.info.get(_KEY)
    return snap if isinstance(snap, Snapshot) else None


def drop(session: AsyncSession) -> None:
    """Forget the snapshot (after a rolled-back savepoint: its objects may be expired or gone)."""
    session.info.pop(_KEY, None)


def forget_conversations(session: AsyncSession) -> None:
    """Conversations changed owner (a contact merge): look them up again."""
    snap = active(session)
    if snap is not None:
        snap.live.clear()


def assigned(session: AsyncSession, agent_id: int, now: datetime) -> None:
    """An assignment in this batch: the agent's load as the next unit must see it."""
    _adjust(session, agent_id, +1, now)


def released(session: AsyncSession, agent_id: int) -> None:
    _adjust(session, agent_id, -1, None)


def _adjust(session: AsyncSession, agent_id: int, delta: int, now: datetime | None) -> None:
    snap = active(session)
    if snap is None:
        return
    for tier, loads in snap.loads.items():
        snap.loads[tier] = [
            replace(
                a,
                open_count=max(0, a.open_count + delta),
                last_assigned_at=now if now is not None else a.last_assigned_at,
            )
            if a.id == agent_id
            else a
            for a in loads
        ]
