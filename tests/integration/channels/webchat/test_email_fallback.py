"""E-mail for web chat visitors, against a real SMTP server (aiosmtpd) and a real socket:
the confirmation link (which never merges anyone), and the e-mail copy of a reply the
visitor never saw (once, after the grace period, never to an unverified address)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from sqlalchemy import func, select

from channels.email.adapter import EmailChannel
from channels.webchat import WebchatChannel, confirm, fallback, feed
from channels.webchat.tokens import VisitorClaims, sign
from models import Contact, ContactIdentity, Event, Message
from router.runtime import Runtime
from router.workers.outbox import OutboxWorker
from tests.conftest import ADMIN, auth, make_agent
from tests.integration.channels.email.conftest import FROM, Recorder, free_port
from tests.integration.channels.webchat.conftest import is_type
from tests.support.waits import wait_for

PUBLIC = "https://careline.example"
ADDR = "lucia@example.org"


@dataclass
class Smtp(Recorder):
    port: int = 0


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    handler = Smtp(port=free_port())
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture(autouse=True)
def email_channel(rt: Runtime, tmp_path: Path, smtp: Smtp) -> EmailChannel:
    # Before `base_url` starts the server: the app reads rt.channels on every request.
    rt.settings = rt.settings.model_copy(
        update={
            "public_url": PUBLIC,
            "email_from": FROM,
            "smtp_url": SecretStr(f"smtp://127.0.0.1:{smtp.port}?timeout=5"),
            "email_store_dir": str(tmp_path / "attachments"),
        }
    )
    adapter = EmailChannel.from_settings(rt.settings, rt.db)
    assert adapter is not None
    adapter.clock = rt.clock
    rt.channels["email"] = adapter
    return adapter


async def mails(smtp: Smtp, n: int, wait_s: float = 10.0) -> list[EmailMessage]:
    """The first `n` accepted mails (the confirmation is sent after the response)."""
    await wait_for(lambda: len(smtp.messages) >= n, timeout=wait_s, what=f"{n} mail(s) received")
    return [m for _, _, m in smtp.messages]


def _requests_in_flight() -> int:
    """HTTP requests the in-process server (uvicorn, on this event loop) is still handling.

    A response's background tasks (the confirmation mail) run in its request's task after the
    response is sent: none in flight means every mail a request could send has been sent (or
    refused) already. uvicorn names the task's coroutine the same in all its HTTP protocols.
    """
    return sum(
        1
        for t in asyncio.all_tasks()
        if not t.done()
        and getattr(t.get_coro(), "__qualname__", "") == "RequestResponseCycle.run_asgi"
    )


async def server_idle() -> None:
    await wait_for(
        lambda: _requests_in_flight() == 0,
        what="the server to finish its requests and their background tasks",
    )


def link_in(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    url = next(w for w in text.split() if w.startswith(PUBLIC))
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def identities(rt: Runtime, kind: str, value: str) -> list[ContactIdentity]:
    async with rt.db.session() as s:
        rows = await s.scalars(
            select(ContactIdentity).where(
                ContactIdentity.kind == kind, ContactIdentity.value == value
            )
        )
        return list(rows)


async def contact_of(rt: Runtime, kind: str, value: str) -> int:
    (ident,) = await identities(rt, kind, value)
    return ident.contact_id


async def confirmed_visitor(
    rt: Runtime,
    webchat: WebchatChannel,
    http: httpx.AsyncClient,
    visitor_id: str,
    email: str = ADDR,
) -> None:
    token = confirm.make_token(webchat.key, visitor_id, email, "en", rt.now())
    r = await http.post(confirm.PATH, params={"token": token})
    assert r.status_code == 200, r.text


async def say(v: Any, text: str) -> int:
    """The visitor writes (then leaves); the conversation id."""
    sock = await v.socket()
    await sock.send({"type": "message", "client_id": "c1", "text": text})
    ack = await sock.until(is_type("ack"))
    await sock.close()
    return int(ack["conversation_id"])


async def reply(http: httpx.AsyncClient, token: str, conv_id: int, text: str) -> int:
    r = await http.post(
        f"/api/v1/conversations/{conv_id}/messages", json={"text": text}, headers=auth(token)
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def meta(rt: Runtime, message_id: int) -> dict[str, Any]:
    async with rt.db.session() as s:
        msg = await s.get(Message, message_id)
        assert msg is not None
        return dict(msg.channel_meta)


async def email_copies(rt: Runtime) -> list[Message]:
    async with rt.db.session() as s:
        rows = await s.scalars(
            select(Message).where(Message.channel == "email").order_by(Message.id)
        )
        return list(rows)


# --- confirmation -----------------------------------------------------------------------


async def test_confirmation_mail_link_confirms_once_and_idempotently(
    rt: Runtime, new_visitor: Any, http: httpx.AsyncClient, smtp: Smtp
) -> None:
    v = await new_visitor(email="Lucia@Example.org", locale="es-MX")
    (mail,) = await mails(smtp, 1)
    assert smtp.messages[0][1] == [ADDR]
    assert mail["Subject"] == "Confirme su dirección de correo"
    assert mail["Auto-Submitted"] == "auto-generated"
    url = link_in(mail)
    assert url.startswith("/webchat/confirm-email?token=")

    # Resuming the session (same address, or none) mails nothing again.
    for body in ({"token": v.token}, {"token": v.token, "email": ADDR}):
        r = await http.post("/webchat/sessions", json=body)
        assert r.status_code == 201
    await server_idle()  # they had their chance to mail (after their responses)
    assert len(smtp.messages) == 1

    # Opening the link (as a mail scanner would) only shows the button.
    page = await http.get(url)
    assert page.status_code == 200
    assert "Confirmar" in page.text
    assert ADDR in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert await identities(rt, "email", ADDR) == []

    for _ in range(2):  # a double click changes nothing
        done = await http.post(url)
        assert done.status_code == 200
        assert "Correo confirmado" in done.text
    # The address becomes this visitor's mail fallback, never an identity of its contact.
    assert await identities(rt, "email", ADDR) == []
    visitor_contact = await contact_of(rt, "webchat", v.visitor_id)
    async with rt.db.session() as s:
        contact = await s.get(Contact, visitor_contact)
        assert confirm.confirmed_address(contact, v.visitor_id) == ADDR
        n = await s.scalar(
            select(func.count()).select_from(Event).where(Event.type == "webchat.email_confirmed")
        )
    assert n == 1


async def test_failed_confirmation_mail_does_not_fail_the_session(
    rt: Runtime, new_visitor: Any, smtp: Smtp, caplog: pytest.LogCaptureFixture
) -> None:
    smtp.rcpt_reply.append("550 no such user")
    v = await new_visitor(email=ADDR)
    assert v.token

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if "confirmation not sent" in r.getMessage()]

    # The attempt is over once it is logged (the refusal came at RCPT, before any DATA).
    warned = await wait_for(warnings, what="the failed confirmation to be logged")
    assert smtp.messages == []
    assert warned
    assert all("lucia" not in w for w in warned)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_bad_or_expired_links_answer_4xx_problems(
    rt: Runtime, webchat: WebchatChannel, http: httpx.AsyncClient, clock: Any, method: str
) -> None:
    good = confirm.make_token(webchat.key, "v00", ADDR, "ru", rt.now())
    payload, _, mac = good.partition(".")
    visitor_token = sign(webchat.key, VisitorClaims("v00", 2**40, email=ADDR))
    for token in ("", "garbage", f"{payload}.{mac[:-2]}AA", f"{payload}x.{mac}", visitor_token):
        r = await http.request(method, confirm.PATH, params={"token": token})
        assert r.status_code == 400, token
        assert r.headers["content-type"].startswith("application/problem+json")
    clock.advance(seconds=confirm.TTL_S + 1)
    r = await http.request(method, confirm.PATH, params={"token": good})
    assert r.status_code == 410
    assert r.json()["status"] == 410
    assert await identities(rt, "email", ADDR) == []


async def test_confirming_a_strangers_chat_never_joins_the_patient(
    rt: Runtime, webchat: WebchatChannel, new_visitor: Any, http: httpx.AsyncClient, clock: Any
) -> None:
    # The patient: an app contact with a verified address and a conversation in progress.
    r = await http.post(
        "/api/v1/inbound",
        json={
            "contact": {"external_id": "app-7", "email": ADDR, "verified": True},
            "message": {"external_id": "m-1", "text": "Necesito una cita"},
        },
        headers=ADMIN,
    )
    assert r.status_code in (200, 201), r.text
    patient_conv = r.json()["conversation_id"]
    patient = await contact_of(rt, "app", "app-7")

    # A stranger opens a chat with the patient's address; the patient gets a genuine mail
    # and presses Confirm.
    v = await new_visitor(email=ADDR)
    await confirmed_visitor(rt, webchat, http, v.visitor_id)
    stranger_conv = await say(v, "soy yo, ¿qué me dijeron?")

    assert stranger_conv != patient_conv
    assert await contact_of(rt, "webchat", v.visitor_id) != patient
    (ident,) = await identities(rt, "email", ADDR)
    assert ident.contact_id == patient
    async with rt.db.session() as s:
        kept = await s.get(Contact, patient)
        assert kept is not None
        assert kept.merged_into_id is None

    # A clinician's reply to the patient never reaches the stranger's socket or mailbox copy.
    _, agent = await make_agent(rt, name="Ana", role="agent_l1", presence="offline")
    await reply(http, agent, patient_conv, "private answer")
    await OutboxWorker(rt).run_once()
    async with rt.db.session() as s:
        texts = await s.scalars(
            select(Message.text).where(Message.conversation_id == stranger_conv)
        )
        assert "private answer" not in list(texts)
    clock.advance(seconds=300)
    await fallback.mail_unseen_replies(rt)
    assert all(m.conversation_id == stranger_conv for m in await email_copies(rt))


# --- the e-mail copy of unseen replies --------------------------------------------------


async def test_unseen_reply_is_mailed_once_after_the_grace_period(
    rt: Runtime,
    webchat: WebchatChannel,
    new_visitor: Any,
    http: httpx.AsyncClient,
    smtp: Smtp,
    clock: Any,
) -> None:
    _, agent = await make_agent(rt, name="Ana", role="agent_l1", presence="offline")
    v = await new_visitor()
    await confirmed_visitor(rt, webchat, http, v.visitor_id)
    conv_id = await say(v, "¿Tienen cita mañana?")
    reply_id = await reply(http, agent, conv_id, "Sí, a las 10:00")
    await OutboxWorker(rt).run_once()  # delivered to web chat: "available", nobody online

    clock.advance(seconds=119)
    assert await fallback.mail_unseen_replies(rt) == 0, "not before the grace period"
    clock.advance(seconds=2)
    assert await fallback.mail_unseen_replies(rt) == 1
    assert await fallback.mail_unseen_replies(rt) == 0, "never twice"

    (copy,) = await email_copies(rt)
    assert (copy.direction, copy.conversation_id, copy.text) == ("out", conv_id, "Sí, a las 10:00")
    assert await meta(rt, reply_id) == {
        "recipient": v.visitor_id,
        "fallback": "mailed",
        "mailed_message_id": copy.id,
    }
    await OutboxWorker(rt).run_once()
    (mail,) = await mails(smtp, 1)
    assert smtp.messages[0][1] == [ADDR]
    body = mail.get_body(("plain",))
    assert body is not None
    assert "Sí, a las 10:00" in body.get_content()
    # The wait acknowledgement (kind "ack") is not an agent's reply: never mailed.
    assert len(await email_copies(rt)) == 1


async def test_reply_a_socket_showed_is_not_mailed(
    rt: Runtime, webchat: WebchatChannel, new_visitor: Any, http: httpx.AsyncClient, clock: Any
) -> None:
    _, agent = await make_agent(rt, name="Ana", role="agent_l1", presence="offline")
    v = await new_visitor()
    await confirmed_visitor(rt, webchat, http, v.visitor_id)
    conv_id = await say(v, "Hola")
    live = await reply(http, agent, conv_id, "live reply")
    offline = await reply(http, agent, conv_id, "replayed reply")
    await OutboxWorker(rt).run_once()

    sock = await v.socket(since=live - 1)  # reconnects, is sent both
    got = await sock.until(lambda f: f.get("id") == offline)
    assert got["text"] == "replayed reply"

    async def offline_shown() -> bool:
        return feed.SHOWN in await meta(rt, offline)

    # Recorded just after the send.
    await wait_for(offline_shown, what="the replayed reply to be recorded as shown")
    assert feed.SHOWN in await meta(rt, offline)
    assert feed.SHOWN in await meta(rt, live)
    await sock.close()

    clock.advance(seconds=600)
    assert await fallback.mail_unseen_replies(rt) == 0
    assert await email_copies(rt) == []
    assert "fallback" not in await meta(rt, offline)


async def test_unverified_email_never_receives_a_copy(
    rt: Runtime, new_visitor: Any, http: httpx.AsyncClient, smtp: Smtp, clock: Any
) -> None:
    _, agent = await make_agent(rt, name="Ana", role="agent_l1", presence="offline")
    v = await new_visitor(email=ADDR)  # typed, never confirmed
    await mails(smtp, 1)  # the confirmation only
    conv_id = await say(v, "Hola")
    reply_id = await reply(http, agent, conv_id, "private answer")
    await OutboxWorker(rt).run_once()

    clock.advance(seconds=300)
    assert await fallback.mail_unseen_replies(rt) == 0
    assert (await meta(rt, reply_id))["fallback"] == "skipped:no_verified_email"
    # The sweep awaits its deliveries: whatever it sent, the SMTP server has accepted.
    await OutboxWorker(rt).run_once()
    await server_idle()  # and no request's background task is still mailing
    assert len(smtp.messages) == 1
    assert await email_copies(rt) == []


async def test_racing_sweeps_mail_each_reply_once(
    rt: Runtime, webchat: WebchatChannel, new_visitor: Any, http: httpx.AsyncClient, clock: Any
) -> None:
    _, agent = await make_agent(rt, name="Ana", role="agent_l1", presence="offline")
    convs = []
    for i in range(3):
        v = await new_visitor()
        await confirmed_visitor(rt, webchat, http, v.visitor_id, f"p{i}@example.org")
        convs.append(await say(v, f"hola {i}"))
    replies = [await reply(http, agent, c, f"reply {c}.{n}") for c in convs for n in range(4)]
    clock.advance(seconds=121)

    counts = await asyncio.gather(*(fallback.mail_unseen_replies(rt, batch=5) for _ in range(4)))
    counts.append(await fallback.mail_unseen_replies(rt))  # whatever the batches left
    assert sum(counts) == len(replies)
    copies = await email_copies(rt)
    assert sorted(m.text for m in copies) == sorted(
        f"reply {c}.{n}" for c in convs for n in range(4)
    )
    assert len({(await meta(rt, r))["mailed_message_id"] for r in replies}) == len(replies)
