"""A batch's rows with reserved ids go out in one flush (router.repo.batch): the unit of work
orders the INSERTs of unrelated mappers by its own sort, not by the foreign keys, so this
checks that the sort puts every row after the rows it refers to. Moving a model to another
module (the sort key is the class's module and name) would break batches; this fails first."""

from __future__ import annotations

from sqlalchemy import func, select

from models import Contact, ContactIdentity, Conversation, Message, OutboxItem, SlaTimer
from router.runtime import Runtime


async def test_rows_added_children_first_flush_parents_first(rt: Runtime) -> None:
    now = rt.now()
    async with rt.db.session() as s:
        # Added in the reverse of the order they must be written in, with their ids set as a
        # batch sets them (PostgreSQL and SQLite both accept explicit ids).
        base = 900_000
        s.add(
            SlaTimer(
                conversation_id=base,
                kind="first_response",
                state="running",
                started_at=now,
                created_at=now,
            )
        )
        s.add(
            OutboxItem(
                message_id=base + 1,
                conversation_id=base,
                channel="app",
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        for i in (1, 0):
            s.add(
                Message(
                    id=base + i,
                    conversation_id=base,
                    direction="out" if i else "in",
                    channel="app",
                    kind="text",
                    external_id=None if i else "flush-order-1",
                    text="hola",
                    created_at=now,
                    delivery_status="queued" if i else "received",
                    channel_meta={},
                )
            )
        s.add(
            Conversation(
                id=base,
                contact_id=base,
                channel="app",
                status="open",
                priority="normal",
                tags=[],
                routing_reasons=[],
                created_at=now,
                updated_at=now,
            )
        )
        s.add(ContactIdentity(contact_id=base, kind="app", value="flush-order", verified=False))
        s.add(Contact(id=base, name="x", attributes={}))
        await s.flush()  # a foreign key violation here if the order were wrong
    async with rt.db.session() as s:
        n = await s.scalar(select(func.count()).select_from(Message).where(Message.id >= base))
    assert n == 2
