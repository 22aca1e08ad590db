"""SMTP outcomes through the outbox: 5xx → dead (visibly), 4xx / network → retry."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from channels.email.adapter import EmailChannel
from channels.email.compose import smtp_config
from models import ContactIdentity, Event, OutboxItem
from models.messages import OutboundMessage
from router.runtime import Runtime
from router.workers.outbox import OutboxWorker
from tests.integration.channels.email.conftest import Recorder, free_port, post_mail
from tests.integration.channels.email.support import mail


async def _item(rt: Runtime) -> OutboxItem:
    async with rt.db.session() as s:
        item = await s.scalar(select(OutboxItem))
        assert item is not None
        return item


async def test_550_recipient_is_dead_and_unreachable(
    email_rt: Runtime, email_client: httpx.AsyncClient, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp_server
    recorder.rcpt_reply = ["550 5.1.1 No such user"]
    await post_mail(email_client, mail())
    await OutboxWorker(email_rt).run_once()
    item = await _item(email_rt)
    assert item.status == "dead"
    assert item.last_error is not None
    assert "550" in item.last_error
    async with email_rt.db.session() as s:
        ident = await s.scalar(select(ContactIdentity).where(ContactIdentity.kind == "email"))
        types = list(await s.scalars(select(Event.type)))
    assert ident is not None
    assert ident.unreachable
    assert "message.failed" in types


async def test_451_is_retried_then_delivered(
    email_rt: Runtime,
    email_client: httpx.AsyncClient,
    smtp_server: tuple[Recorder, int],
    clock: object,
) -> None:
    recorder, _ = smtp_server
    recorder.rcpt_reply = ["451 4.3.0 Try again later"]
    await post_mail(email_client, mail())
    await OutboxWorker(email_rt).run_once()
    item = await _item(email_rt)
    assert item.status == "pending"
    clock.advance(seconds=60)  # type: ignore[attr-defined]
    await OutboxWorker(email_rt).run_once()
    assert (await _item(email_rt)).status == "delivered"
    assert len(recorder.messages) == 1


async def test_connection_refused_is_retryable(
    email_rt: Runtime, email_client: httpx.AsyncClient
) -> None:
    adapter = email_rt.channels["email"]
    adapter.smtp = smtp_config(f"smtp://127.0.0.1:{free_port()}?timeout=2")  # type: ignore[attr-defined]
    await post_mail(email_client, mail())
    await OutboxWorker(email_rt).run_once()
    item = await _item(email_rt)
    assert item.status == "pending"
    assert item.last_error is not None
    assert "smtp unavailable" in item.last_error


async def test_a_repeated_send_is_the_same_mail_to_the_customer(
    email_rt: Runtime, smtp_server: tuple[Recorder, int]
) -> None:
    """At-least-once delivery (a crash between SMTP and recording) may send a mail twice: both
    copies carry one Message-ID, on any instance (keyed by WEBHOOK_SECRET), so the customer's
    client shows one mail. Another message gets another id."""
    recorder, _ = smtp_server
    first = EmailChannel.from_settings(email_rt.settings, email_rt.db)
    other_instance = EmailChannel.from_settings(email_rt.settings, email_rt.db)
    assert first is not None
    assert other_instance is not None
    msg = OutboundMessage(
        channel="email", message_id=41, conversation_id=7, recipient="ana@example.com", text="Hola"
    )
    a = await first.send(msg)
    b = await other_instance.send(msg)
    c = await first.send(msg.model_copy(update={"message_id": 42}))
    ids = [m["Message-ID"].strip("<>") for _, _, m in recorder.messages]
    assert ids == [a.external_id, b.external_id, c.external_id]
    assert ids[0] == ids[1]
    assert ids[2] != ids[0]
    # Keyed: the id is not derivable from the numbers alone.
    unkeyed = EmailChannel.from_settings(
        email_rt.settings.model_copy(update={"webhook_secret": None}), email_rt.db
    )
    assert unkeyed is not None
    assert (await unkeyed.send(msg)).external_id != ids[0]
