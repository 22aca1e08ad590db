"""A forged `From:` never lands in a patient's thread: the provider's Authentication-Results
decide whether the sender is who the header says."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from models import ContactIdentity, Message
from router.runtime import Runtime
from router.workers.outbox import OutboxWorker
from tests.integration.channels.email.conftest import post_mail
from tests.integration.channels.email.support import mail

CRISIS = "No puedo más, estoy pensando en hacerme daño."


async def stored(rt: Runtime, external_id: str) -> Message:
    async with rt.db.session() as s:
        msg = await s.scalar(select(Message).where(Message.external_id == external_id))
    assert msg is not None
    return msg


async def test_a_forged_sender_never_lands_in_the_patients_crisis_thread(
    email_rt: Runtime, email_client: httpx.AsyncClient
) -> None:
    patient = (await post_mail(email_client, mail(body=CRISIS))).json()
    assert patient["status"] == "stored"
    first = await stored(email_rt, "m1@correo.example")
    assert first.channel_meta["sender_verified"] is True

    forgeries = {
        "<f1@evil.example>": None,  # no verdict at all
        "<f2@evil.example>": "dmarc=fail header.from={domain}",
        "<f3@evil.example>": "dkim=pass header.d=evil.example; spf=pass smtp.mailfrom=x@evil.ex",
    }
    for mid, auth in forgeries.items():
        r = await post_mail(
            email_client,
            mail(
                message_id=mid,
                body="Soy yo, cambia mi dirección.",
                auth=auth,
                # Naming the patient's public Message-ID and the conversation token.
                references="<m1@correo.example>",
                subject=f"Re: Consulta [#c{patient['conversation_id']}]",
                to=f"ayuda+c{patient['conversation_id']}@clinica.example",
            ),
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "stored"
        assert r.json()["conversation_id"] != patient["conversation_id"], mid
        forged = await stored(email_rt, mid.strip("<>"))
        assert forged.channel_meta["sender_verified"] is False
    # A header claiming a trusted verdict, but below an untrusted one, or from another
    # authserv-id, counts for nothing either.
    r = await post_mail(
        email_client,
        mail(
            message_id="<f4@evil.example>",
            auth=None,
            headers={
                "Authentication-Results": "mx.evil.example; dmarc=pass header.from=correo.example"
            },
        ),
    )
    assert r.json()["conversation_id"] != patient["conversation_id"]

    async with email_rt.db.session() as s:
        idents = {
            (i.value, i.verified, i.contact_id)
            for i in await s.scalars(select(ContactIdentity).where(ContactIdentity.kind == "email"))
        }
    patient_contact = next(c for v, _, c in idents if v == "ana.ruiz@correo.example")
    unverified = [(v, ok, c) for v, ok, c in idents if v.startswith("unverified:")]
    assert unverified == [("unverified:ana.ruiz@correo.example", False, unverified[0][2])]
    assert unverified[0][2] != patient_contact


async def test_unauthenticated_mail_threads_only_by_our_own_message_id(
    email_rt: Runtime, email_client: httpx.AsyncClient
) -> None:
    patient = (await post_mail(email_client, mail())).json()
    assert await OutboxWorker(email_rt).run_once() == 1  # our acknowledgement
    async with email_rt.db.session() as s:
        ours = await s.scalar(select(Message.external_id).where(Message.direction == "out"))
    assert ours is not None
    # Her provider failed to sign this once, but it answers the mail we sent her: our
    # Message-ID carries a keyed tag only its recipients hold.
    r = await post_mail(
        email_client,
        mail(message_id="<m2@correo.example>", auth=None, in_reply_to=f"<{ours}>"),
    )
    assert r.json()["conversation_id"] == patient["conversation_id"]
    assert (await stored(email_rt, "m2@correo.example")).channel_meta["sender_verified"] is False
    # Two unauthenticated mails from one address do not thread with each other by From.
    a = (await post_mail(email_client, mail(message_id="<u1@correo.example>", auth=None))).json()
    b = (await post_mail(email_client, mail(message_id="<u2@correo.example>", auth=None))).json()
    assert len({a["conversation_id"], b["conversation_id"], patient["conversation_id"]}) == 3


async def test_aligned_dkim_or_spf_authenticates_and_the_check_can_be_turned_off(
    email_rt: Runtime, email_client: httpx.AsyncClient
) -> None:
    patient = (await post_mail(email_client, mail())).json()
    r = await post_mail(
        email_client,
        mail(
            message_id="<m2@correo.example>",
            auth="dkim=pass (good signature) header.d=correo.example header.s=s1; dmarc=none",
        ),
    )
    assert r.json()["conversation_id"] == patient["conversation_id"]
    r = await post_mail(
        email_client,
        mail(
            message_id="<m3@correo.example>", auth="spf=pass smtp.mailfrom=bounces@correo.example"
        ),
    )
    assert r.json()["conversation_id"] == patient["conversation_id"]
    # A provider that writes no Authentication-Results: the deployment opts out, From: counts.
    email_rt.settings = email_rt.settings.model_copy(update={"email_require_authentication": False})
    r = await post_mail(email_client, mail(message_id="<m4@correo.example>", auth=None))
    assert r.json()["conversation_id"] == patient["conversation_id"]


async def test_a_forged_auto_reply_records_nothing_on_the_patients_thread(
    email_rt: Runtime, email_client: httpx.AsyncClient
) -> None:
    await post_mail(email_client, mail())
    auto = mail(
        message_id="<ooo@evil.example>",
        subject="Automatic reply: Consulta",
        in_reply_to="<m1@correo.example>",
        headers={"Auto-Submitted": "auto-replied"},
        auth=None,
    )
    r = await post_mail(email_client, auto)
    assert r.json()["status"] == "ignored"
    assert r.json()["conversation_id"] is None
