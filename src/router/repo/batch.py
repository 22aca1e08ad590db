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

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction

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
    # queue id → its open unassigned conversations as flushed (cleared by every flush).
    depth: dict[int, int] = field(default_factory=dict)
    # agent id → their tier as stored, when every tier's loads were read ahead (loads[None]).
    agent_tiers: dict[int, int | None] | None = None
    # queue id → median handle time over the last 24 h (None: no data).
    medians: dict[int, float | None] = field(default_factory=dict)
    # outbox item id → the item (None: gone), for recording delivery outcomes.
    outbox: dict[int, OutboxItem | None] = field(default_factory=dict)
    # Rows read ahead that units find with `session.get` (strong references).
    held: list[object] = field(default_factory=list)
    # Table → ids reserved from its sequence for this batch's new rows (PostgreSQL), the
    # smallest last. A new row whose id is known needs no flush of its own, so the batch's
    # rows go out at its commit, one multi-row INSERT (or UPDATE) per table for all units.
    ids: dict[str, list[int]] = field(default_factory=dict)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _ctx: UOWTransaction) -> None:
    snap = session.info.get(_KEY)
    if isinstance(snap, Snapshot):
        snap.depth.clear()  # counts of flushed rows: a flush changes them


def start(session: AsyncSession) -> Snapshot:
    snap = session.info.get(_KEY)
    if not isinstance(snap, Snapshot):
        snap = Snapshot()
        session.info[_KEY] = snap
    return snap


def active(session: AsyncSession) -> Snapshot | None:
    snap = session.info.get(_KEY)
    return snap if isinstance(snap, Snapshot) else None


# The tables whose new rows a batch gives reserved ids (`reserve_ids`).
RESERVED = ("messages", "conversations", "contacts")


async def reserve_ids(session: AsyncSession, counts: dict[str, int]) -> None:
    """Take `counts[table]` ids from each table's sequence, one statement for all (PostgreSQL;
    elsewhere nothing). Unused ids are only gaps: ids are identifiers, and PostgreSQL's
    sequences leave gaps on every rollback anyway."""
    snap = start(session)
    n = max(counts.values(), default=0)
    if n <= 0 or session.get_bind().dialect.name != "postgresql":
        return
    cols = ", ".join(
        f"CASE WHEN g <= :{t} THEN nextval(pg_get_serial_sequence('{t}', 'id')) END"
        for t in RESERVED
    )
    rows = (
        await session.execute(
            text(f"SELECT {cols} FROM generate_series(1, :n) AS g"),  # noqa: S608 (constants)
            {"n": n, **{t: counts.get(t, 0) for t in RESERVED}},
        )
    ).all()
    for i, table in enumerate(RESERVED):
        got = sorted((int(r[i]) for r in rows if r[i] is not None), reverse=True)
        snap.ids.setdefault(table, []).extend(got)


def take_id(session: AsyncSession, table: str) -> int | None:
    """A reserved id for a new row of `table` in this batch, in ascending order; None: none
    left, or no batch (the row gets its id from its INSERT, at a flush)."""
    snap = active(session)
    pool = snap.ids.get(table) if snap is not None else None
    return pool.pop() if pool else None


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
