"""`POST /webhooks/email` end to end: authenticity, limits, storing, de-dup, threading,
machine mail, and the acknowledgement going out over real SMTP with threading headers."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from models import Attachment, ContactIdentity, Conversation, Event, Message, OutboxItem
from router.files import AttachmentStore
from router.runtime import Runtime
from router.workers.outbox import OutboxWorker
from tests.integration.channels.email.conftest import Recorder, post_mail, signed
from tests.integration.channels.email.support import mail
from tests.support.factories import count_rows as count

DATA = Path(__file__).parents[3] / "data" / "email"


async def messages(rt: Runtime) -> list[Message]:
    async with rt.db.session() as s:
        return list(await s.scalars(select(Message).order_by(Message.id)))


async def test_unconfigured_webhook_is_404(rt: Runtime, client: httpx.AsyncClient) -> None:
    from channels.email.webhook import api_router

    app = client._transport.app  # type: ignore[attr-defined]
    app.include_router(api_router)
    raw = mail()
    r = await client.post("/webhooks/email", content=raw, headers=signed(raw))
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_bad_or_missing_signature_is_401(
    email_rt: Runtime, email_client: httpx.AsyncClient
) -> None:
    raw = mail()
    r = await email_client.post("/webhooks/email", content=raw, headers=signed(raw, "wrong"))
    assert r.status_code == 401
    r = await email_client.post(
        "/webhooks/email", content=raw, headers={"Content-Type": "message/rfc822"}
    )
    assert r.status_code == 401
    assert await count(email_rt, Message) == 0


async def test_oversized_body_is_413_and_wrong_type_415(
    email_rt: Runtime, email_client: httpx.AsyncClient
) -> None:
    raw = mail(body="x" * 2_100_000)
    r = await post_mail(email_client, raw)
    assert r.status_code == 413
    r = await email_client.post(
        "/webhooks/email",
        content=b'{"a": 1}',
        headers={**signed(b'{"a": 1}'), "Content-Type": "application/json"},
    )
    assert r.status_code == 415


async def test_unusable_mail_is_422(email_rt: Runtime, email_client: httpx.AsyncClient) -> None:
    r = await post_mail(email_client, b"Subject: no sender\n\nhello\n")
    assert r.status_code == 422
    assert "sender" in r.json()["detail"]


async def test_stores_acks_over_smtp_and_threads_reply(
    email_rt: Runtime, email_client: httpx.AsyncClient, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp_server
    r = await post_mail(email_client, mail(subject="Re: Fwd: Cita con el dermatólogo"))
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["status"] == "stored"
    # Redelivery: same answer, nothing new.
    again = await post_mail(email_client, mail(subject="Re: Fwd: Cita con el dermatólogo"))
    assert again.json() == {**first, "status": "duplicate"}

    async with email_rt.db.session() as s:
        ident = await s.scalar(select(ContactIdentity).where(ContactIdentity.kind == "email"))
        assert ident is not None
        assert ident.value == "ana.ruiz@correo.example"
        conv = await s.get(Conversation, first["conversation_id"])
        assert conv is not None
        assert conv.subject == "Re: Fwd: Cita con el dermatólogo"
    # The acknowledgement goes out through the outbox to the real SMTP server.
    assert await OutboxWorker(email_rt).run_once() == 1
    assert len(recorder.messages) == 1
    mail_from, rcpts, sent = recorder.messages[0]
    # The return path is signed for this message (VERP), so only a real bounce fails it.
    assert re.fullmatch(r"ayuda\+b\d+-[0-9a-f]{20}@clinica\.example", mail_from)
    assert rcpts == ["ana.ruiz@correo.example"]
    cid = first["conversation_id"]
    assert sent["In-Reply-To"] == "<m1@correo.example>"
    assert sent["References"] == "<m1@correo.example>"
    assert sent["Subject"] == f"Re: Cita con el dermatólogo [#c{cid}]"
    assert sent["Reply-To"].addresses[0].addr_spec == f"ayuda+c{cid}@clinica.example"
    assert sent["Auto-Submitted"] == "auto-replied"
    assert sent.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in sent.iter_parts()] == ["text/plain", "text/html"]
    ours = str(sent["Message-ID"]).strip("<>")
    out = [m for m in await messages(email_rt) if m.direction == "out"]
    assert [m.external_id for m in out] == [ours]
    assert out[0].delivery_status == "sent"

    # The customer answers our mail: threads by In-Reply-To, no second acknowledgement.
    reply = mail(
        message_id="<m2@correo.example>",
        subject=f"Re: Cita con el dermatólogo [#c{cid}]",
        body="Perfecto, gracias.\n\nEl mar, 4 jun 2024, Clinica <ayuda@clinica.example> escribió:"
        "\n> Hola",
        in_reply_to=f"<{ours}>",
        references=f"<m1@correo.example> <{ours}>",
    )
    r = await post_mail(email_client, reply)
    assert r.json()["conversation_id"] == cid
    stored = [m for m in await messages(email_rt) if m.external_id == "m2@correo.example"][0]
    assert stored.text == "Perfecto, gracias."
    assert "escribió" in stored.channel_meta["full_text"]
    assert await OutboxWorker(email_rt).run_once() == 0

    # An agent reply threads to the customer's last message, References in order.
    async with email_rt.db.session() as s:
        conv = await s.get(Conversation, cid)
        assert conv is not None
        from router.flows.outbound import enqueue_outbound

        await enqueue_outbound(s, email_rt, conv, "Le esperamos el jueves.", now=email_rt.now())
    assert await OutboxWorker(email_rt).run_once() == 1
    _, _, agent_mail = recorder.messages[-1]
    assert agent_mail["In-Reply-To"] == "<m2@correo.example>"
    assert agent_mail["References"] == f"<m1@correo.example> <{ours}> <m2@correo.example>"
    assert agent_mail["Auto-Submitted"] is None
    assert agent_mail["Subject"] == f"Re: Cita con el dermatólogo [#c{cid}]"


async def test_token_threads_without_headers_only_for_the_same_contact(
    email_rt: Runtime, email_client: httpx.AsyncClient
) -> None:
    first = (await post_mail(email_client, mail())).json()
    cid = first["conversation_id"]
    # The client dropped In-Reply-To/References; the plus-address still carries the token.
    r = await post_mail(
        email_client,
        mail(message_id="<m3@correo.example>", to=f"ayuda+c{cid}@clinica.example", subject="otra"),
    )
    assert r.json()["conversation_id"] == cid
    # Another person naming that token (or referencing Ana's Message-ID) gets their own thread.
    r = await post_mail(
        email_client,
        mail(
            sender="intruso@otro.example",
            message_id="<x1@otro.example>",
            to=f"ayuda+c{cid}@clinica.example",
            references="<m1@correo.example>",
        ),
    )
    assert r.json()["status"] == "stored"
    assert r.json()["conversation_id"] != cid


async def test_auto_reply_never_opens_a_conversation(
    email_rt: Runtime, email_client: httpx.AsyncClient
) -> None:
    raw = (DATA / "careline" / "es_auto_reply_out_of_office.eml").read_bytes()
    r = await post_mail(email_client, raw)
    assert r.status_code == 200
    assert r.json()["status"] == "ignored"
    assert r.json()["reason"].startswith("auto_reply")
    assert await count(email_rt, Conversation) == 0
    assert await count(email_rt, OutboxItem) == 0

    # On a known thread it is recorded as an event, still no routing nor message.
    first = (await post_mail(email_client, mail(sender="pedro@correo.example"))).json()
    auto = mail(
        sender="pedro@correo.example",
        message_id="<ooo-2@correo.example>",
        subject="Automatic reply: Consulta",
        in_reply_to="<m1@correo.example>",
        headers={"Auto-Submitted": "auto-replied"},
    )
    r = await post_mail(email_client, auto)
    assert r.json()["status"] == "ignored"
    assert r.json()["conversation_id"] == first["conversation_id"]
    async with email_rt.db.session() as s:
        types = list(await s.scalars(select(Event.type)))
    assert "email.auto_reply" in types
    assert [m.direction for m in await messages(email_rt)] == ["in", "out"]  # + the first ack


async def test_loop_from_our_own_address_is_dropped(
    email_rt: Runtime, email_client: httpx.AsyncClient
) -> None:
    r = await post_mail(email_client, mail(sender="Clinica <AYUDA@clinica.example>"))
    assert r.json()["status"] == "ignored"
    assert r.json()["reason"].startswith("loop")
    assert await count(email_rt, Conversation) == 0


async def test_bounce_marks_our_message_failed_and_address_unreachable(
    email_rt: Runtime, email_client: httpx.AsyncClient, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp_server
    first = (await post_mail(email_client, mail())).json()
    await OutboxWorker(email_rt).run_once()
    out = [m for m in await messages(email_rt) if m.direction == "out"][0]
    dsn = (DATA / "nodemailer" / "delivery-status.eml").read_bytes()
    dsn = dsn.replace(b"<xxxxx@email.amazonses.com>", f"<{out.external_id}>".encode())
    # The DSN comes back to the return path our reply was sent with.
    dsn = dsn.replace(b"xxxxx@gmail.com", recorder.messages[0][0].encode())
    r = await post_mail(email_client, dsn)
    assert r.json()["status"] == "ignored"
    assert r.json()["conversation_id"] == first["conversation_id"]
    async with email_rt.db.session() as s:
        msg = await s.get(Message, out.id)
        assert msg is not None
        assert msg.delivery_status == "failed"
        assert msg.channel_meta["bounce"]["status"] == "5.1.1"
        ident = await s.scalar(select(ContactIdentity).where(ContactIdentity.kind == "email"))
        assert ident is not None
        assert ident.unreachable
        types = list(await s.scalars(select(Event.type)))
    assert "message.bounced" in types
    assert await count(email_rt, Conversation) == 1


async def test_attachments_stored_by_reference(
    email_rt: Runtime, email_client: httpx.AsyncClient, store: AttachmentStore
) -> None:
    raw = (DATA / "careline" / "ru_cp1251_html_inline_attachment.eml").read_bytes()
    r = await post_mail(email_client, raw)
    assert r.json()["status"] == "stored"
    async with email_rt.db.session() as s:
        atts = list(await s.scalars(select(Attachment).order_by(Attachment.id)))
        msg = await s.scalar(select(Message))
    assert [(a.kind, a.mime, a.name) for a in atts] == [
        ("image", "image/png", "part-1.png"),
        ("file", "application/pdf", "анализы.pdf"),
    ]
    assert store.get(atts[1].url).startswith(b"%PDF")
    assert msg is not None
    assert store.get(msg.channel_meta["raw_ref"]) == raw  # the full original, byte for byte
    assert "alert" not in msg.text
    assert msg.text.startswith("Добрый день")


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9])
async def test_whole_corpus_never_500(
    email_rt: Runtime, email_client: httpx.AsyncClient, cut: float
) -> None:
    """Every corpus file, whole and truncated, is stored, ignored or refused with a 4xx."""
    files = sorted(p for p in DATA.rglob("*") if p.suffix in (".eml", ".txt"))
    assert len(files) > 50
    for path in files:
        raw = path.read_bytes()
        for body in (raw, raw[: max(1, int(len(raw) * cut))]):
            r = await post_mail(email_client, body)
            assert r.status_code in (200, 413, 422), (path.name, r.status_code, r.text)
            if r.status_code == 200:
                assert r.json()["status"] in ("stored", "duplicate", "ignored")


async def test_token_beats_the_contacts_latest_open_conversation(
    email_rt: Runtime, email_client: httpx.AsyncClient
) -> None:
    first = (await post_mail(email_client, mail())).json()
    async with email_rt.db.session() as s:
        a = await s.get(Conversation, first["conversation_id"])
        assert a is not None
        # A newer open conversation of the same contact: ingest's fallback would pick it.
        b = Conversation(
            contact_id=a.contact_id,
            channel="email",
            status="open",
            priority="normal",
            tags=[],
            routing_reasons=[],
            created_at=email_rt.now(),
            updated_at=email_rt.now(),
        )
        s.add(b)
        await s.flush()
        b_id = b.id
    plain = mail(message_id="<m4@correo.example>", subject="sin token")
    assert (await post_mail(email_client, plain)).json()["conversation_id"] == b_id
    tokened = mail(message_id="<m5@correo.example>", subject=f"Re: x [#c{a.id}]")
    assert (await post_mail(email_client, tokened)).json()["conversation_id"] == a.id


async def test_a_forged_bounce_never_marks_the_patient_unreachable(
    email_rt: Runtime, email_client: httpx.AsyncClient, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp_server
    await post_mail(email_client, mail())
    await OutboxWorker(email_rt).run_once()
    out = [m for m in await messages(email_rt) if m.direction == "out"][0]
    verp = recorder.messages[0][0]
    dsn = (DATA / "nodemailer" / "delivery-status.eml").read_bytes()
    dsn = dsn.replace(b"<xxxxx@email.amazonses.com>", f"<{out.external_id}>".encode())
    local, _, domain = verp.partition("@")
    mid, _, tag = local.partition("+b")[2].partition("-")
    forged_paths = [
        b"ayuda@clinica.example",  # names our Message-ID, but at the plain address
        f"ayuda+b{mid}-{'0' * len(tag)}@{domain}".encode(),  # a guessed tag
        f"ayuda+b{int(mid) + 1}-{tag}@{domain}".encode(),  # a real tag, another message
    ]
    for path in forged_paths:
        r = await post_mail(email_client, dsn.replace(b"xxxxx@gmail.com", path))
        assert r.json()["status"] == "ignored"
    async with email_rt.db.session() as s:
        msg = await s.get(Message, out.id)
        assert msg is not None
        assert msg.delivery_status == "sent"
        assert "bounce" not in msg.channel_meta
        ident = await s.scalar(select(ContactIdentity).where(ContactIdentity.kind == "email"))
        assert ident is not None
        assert not ident.unreachable
        assert "message.bounced" not in set(await s.scalars(select(Event.type)))


async def test_concurrent_mails_share_commits_each_stored_once(
    email_rt: Runtime, email_client: httpx.AsyncClient, backend: str
) -> None:
    """The webhook writes through group commit (PostgreSQL): concurrent mails, a redelivery
    of each among them, are each stored once with their raw mail on disk."""
    raws = [
        mail(sender=f"Paciente {i} <p{i}@correo.example>", message_id=f"<g{i}@correo.example>")
        for i in range(12)
    ]
    answers = await asyncio.gather(*(post_mail(email_client, r) for r in raws + raws))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    stored = [m for m in await messages(email_rt) if m.direction == "in"]
    assert sorted(m.external_id or "" for m in stored) == sorted(
        f"g{i}@correo.example" for i in range(12)
    )
    assert all((m.channel_meta or {}).get("raw_ref") for m in stored)
    by_id = {a.json()["message_id"] for a in answers}
    assert by_id == {m.id for m in stored}  # a copy's answer names the stored message
    if backend == "postgresql":
        assert email_rt.group.batches < email_rt.group.units
