"""De-dup on Message-ID *and* sender: a reused Message-ID never drops a mail, and mail a
client would show (no angle brackets, a junk first line, an intranet domain) is accepted."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from models import Conversation, Message
from models.vocab import SENDER
from router.flows.outbound import enqueue_outbound
from router.runtime import Runtime
from router.workers.outbox import OutboxWorker
from tests.integration.channels.email.conftest import Recorder, post_mail
from tests.integration.channels.email.support import mail


async def inbound(rt: Runtime) -> list[Message]:
    async with rt.db.session() as s:
        return list(
            await s.scalars(select(Message).where(Message.direction == "in").order_by(Message.id))
        )


async def test_mails_reusing_a_message_id_are_kept_not_dropped(
    email_rt: Runtime, email_client: httpx.AsyncClient, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp_server
    first = mail(body="Necesito ayuda urgente.")
    a = (await post_mail(email_client, first)).json()
    assert a["status"] == "stored"
    others = [
        mail(sender="Pedro <pedro@otro.example>"),  # another sender, the same Message-ID
        mail(body="Y otra cosa: cambié de teléfono."),  # the same sender, another mail
        # Empty Message-ID headers (the builder refuses to write one, so it is added raw).
        b"Message-ID: <>\n" + mail(sender="Luis <luis@otro.example>", message_id=None),
        b"Message-ID: <>\n"
        + mail(sender="Luis <luis@otro.example>", message_id=None, body="Segundo correo."),
    ]
    answers = [(await post_mail(email_client, raw)).json() for raw in others]
    assert [r["status"] for r in answers] == ["stored"] * 4
    # An exact redelivery of any of them is still a no-op.
    for raw, r in zip([first, *others], [a, *answers], strict=True):
        again = (await post_mail(email_client, raw)).json()
        assert again == {**r, "status": "duplicate"}
    stored = await inbound(email_rt)
    assert len(stored) == 5
    assert len({m.external_id for m in stored}) == 5
    pedro, ana_again = stored[1], stored[2]
    assert pedro.channel_meta["message_id_reused"] is True
    assert pedro.channel_meta["message_id"] == "m1@correo.example"
    assert pedro.conversation_id != a["conversation_id"]
    assert ana_again.channel_meta["message_id_reused"] is True
    assert ana_again.conversation_id == a["conversation_id"]
    assert "message_id_reused" not in stored[0].channel_meta

    # Pedro's answer threads to the Message-ID his client knows.
    async with email_rt.db.session() as s:
        conv = await s.get(Conversation, pedro.conversation_id)
        assert conv is not None
        await enqueue_outbound(s, email_rt, conv, "Hola Pedro.", now=email_rt.now())
    while await OutboxWorker(email_rt).run_once():
        pass
    to_pedro = [m for _, rcpt, m in recorder.messages if rcpt == ["pedro@otro.example"]]
    assert to_pedro
    assert to_pedro[-1]["In-Reply-To"] == "<m1@correo.example>"


async def test_lenient_senders_are_accepted_and_only_no_sender_is_refused(
    email_rt: Runtime, email_client: httpx.AsyncClient
) -> None:
    bare = mail(sender="Test test@example.com", message_id="<l1@example.com>")
    assert b"From: Test test@example.com" in bare
    junk = b"This is a junk banner line\r\n" + mail(message_id="<l2@correo.example>")
    intranet = mail(sender="Enfermera <enfermera@intranet>", message_id="<l3@intranet>")
    for raw, who in [
        (bare, "test@example.com"),
        (junk, "ana.ruiz@correo.example"),
        (intranet, "enfermera@intranet"),
    ]:
        r = await post_mail(email_client, raw)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "stored"
        got = [m for m in await inbound(email_rt) if m.id == r.json()["message_id"]][0]
        assert got.channel_meta[SENDER].removeprefix("unverified:") == who
    r = await post_mail(email_client, mail(sender="undisclosed-recipients:;"))
    assert r.status_code == 422
