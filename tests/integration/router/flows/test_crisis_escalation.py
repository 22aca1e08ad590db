"""A crisis always reaches a clinician: assignment above capacity and never to a supervisor,
pages of the on-call supervisor through a real SMTP server when unanswered (or at once when no
clinician is online), the first-line holder told when routing moves their conversation, and
acknowledgements that tell the truth."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from channels.email.adapter import EmailChannel
from channels.email.compose import smtp_config
from models import Event, Message, Page
from router.files import AttachmentStore
from router.runtime import Runtime
from router.workers.pages import PageWorker
from router.workers.sweeper import Sweeper
from tests.conftest import ADMIN, auth, make_agent
from tests.support.factories import app_inbound as inbound
from tests.support.fakes import FakeClock

CRISIS = "quiero quitarme la vida"
CLINICAL = "¿Puedo tomar paracetamol con la medicación?"
BOOKING = "Quiero cambiar mi cita del jueves"
ONCALL = "on-call@careline.example"


@dataclass
class Inbox:
    mails: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.mails.append((list(envelope.rcpt_tos), mail))
        return "250 Message accepted"


@pytest.fixture
def smtp(rt: Runtime, tmp_path: Path) -> Iterator[Inbox]:
    """A real SMTP server (aiosmtpd) on loopback, behind the production email adapter."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    rt.channels["email"] = EmailChannel(
        smtp=smtp_config(f"smtp://127.0.0.1:{port}?timeout=5"),
        email_from="Careline <care@clinic.example>",
        db=rt.db,
        store=AttachmentStore(tmp_path / "store"),
        clock=rt.clock,
    )
    try:
        yield inbox
    finally:
        controller.stop()


async def conv(client: httpx.AsyncClient, cid: int) -> Any:
    return (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()


async def events(rt: Runtime, cid: int, type_: str) -> list[Event]:
    async with rt.db.session() as s:
        return list(
            await s.scalars(
                select(Event)
                .where(Event.conversation_id == cid, Event.type == type_)
                .order_by(Event.id)
            )
        )


async def pages(rt: Runtime, cid: int) -> list[Page]:
    async with rt.db.session() as s:
        return list(await s.scalars(select(Page).where(Page.conversation_id == cid)))


async def outbound(rt: Runtime, cid: int) -> list[Message]:
    async with rt.db.session() as s:
        return list(
            await s.scalars(
                select(Message)
                .where(Message.conversation_id == cid, Message.direction == "out")
                .order_by(Message.id)
            )
        )


async def test_crisis_with_every_clinician_at_capacity_goes_to_the_least_loaded(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    a, _ = await make_agent(rt, name="a", role="agent_l2", languages=["es"], capacity=1)
    b, _ = await make_agent(rt, name="b", role="agent_l2", languages=["es"], capacity=2)
    await make_agent(rt, name="sup", role="supervisor", languages=["es"], capacity=10)
    for i in range(3):
        await inbound(client, f"c{i}", f"c{i}", CLINICAL)
    # a holds 1 of 1, b 2 of 2: both full, same ratio; a has fewer open conversations.
    cid = await inbound(client, "crisis", "crisis", CRISIS)
    assert (await conv(client, cid))["assignee_id"] == a
    assigned = (await events(rt, cid, "conversation.assigned"))[-1]
    assert assigned.data["over_capacity"] is True
    assert "above capacity" in assigned.data["reason"]
    assert b != a


async def test_crisis_is_not_assigned_to_a_supervisor_while_a_clinician_is_online(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    await make_agent(rt, name="sup", role="supervisor", languages=["es"], capacity=10)
    clin, _ = await make_agent(rt, name="dr", role="agent_l2", languages=["es"], capacity=1)
    await inbound(client, "c0", "c0", CLINICAL)  # the clinician is now full, the supervisor idle
    cid = await inbound(client, "crisis", "crisis", CRISIS)
    assert (await conv(client, cid))["assignee_id"] == clin


async def test_an_absent_clinicians_crisis_moves_at_once_even_when_everyone_is_full(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    """The outside test: crises stuck on an agent who went offline, clinicians all full."""
    a, a_token = await make_agent(rt, name="a", role="agent_l2", languages=["es"], capacity=1)
    cid = await inbound(client, "crisis", "crisis", CRISIS)
    assert (await conv(client, cid))["assignee_id"] == a
    b, _ = await make_agent(rt, name="b", role="agent_l2", languages=["es"], capacity=1)
    await inbound(client, "c0", "c0", CLINICAL)  # b is full too
    r = await client.put(
        f"/api/v1/agents/{a}/presence", json={"presence": "offline"}, headers=auth(a_token)
    )
    assert r.status_code == 200
    assert (await conv(client, cid))["assignee_id"] == b, "no grace period for a crisis"
    await Sweeper(rt).run_once()
    assert (await conv(client, cid))["assignee_id"] == b


async def test_unanswered_crisis_offers_to_every_clinician_and_pages_by_email(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, smtp: Inbox
) -> None:
    a, _ = await make_agent(rt, name="a", role="agent_l2", languages=["es"])
    b, _ = await make_agent(rt, name="b", role="agent_l2", languages=["es"])
    await make_agent(rt, name="sup", role="supervisor", languages=["es"])
    cid = await inbound(client, "crisis", "crisis", CRISIS)
    worker = PageWorker(rt)
    await worker.run_once()
    assert await pages(rt, cid) == [], "clinicians are online: nobody is paged yet"

    clock.advance(seconds=rt.policy.escalation.unanswered_after + 1)
    await worker.run_once()
    offered = await events(rt, cid, "crisis.offered")
    assert sorted(e.data["to_agent_id"] for e in offered) == sorted([a, b])
    [page] = await pages(rt, cid)
    assert (page.reason, page.channel, page.recipient) == ("unanswered", "email", ONCALL)
    assert (page.status, page.attempts) == ("delivered", 1)
    assert page.delivered_at is not None
    [(to, mail)] = smtp.mails
    assert to == [ONCALL]
    assert f"#{cid}" in str(mail["Subject"])
    body = mail.get_content()
    assert CRISIS not in body, "a page never carries what the patient wrote"
    assert f"/api/v1/conversations/{cid}" in body
    assert [e.type for e in await events(rt, cid, "page.delivered")] == ["page.delivered"]
    # Once: later runs neither page again nor re-offer.
    clock.advance(minutes=10)
    await worker.run_once()
    assert len(smtp.mails) == 1
    assert len(await events(rt, cid, "crisis.offered")) == 2


async def test_a_clinician_reply_in_time_means_no_page(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, smtp: Inbox
) -> None:
    _, token = await make_agent(rt, name="a", role="agent_l2", languages=["es"])
    cid = await inbound(client, "crisis", "crisis", CRISIS)
    r = await client.post(
        f"/api/v1/conversations/{cid}/messages", json={"text": "Estoy aquí."}, headers=auth(token)
    )
    assert r.status_code == 201, r.text
    clock.advance(seconds=rt.policy.escalation.unanswered_after + 1)
    await PageWorker(rt).run_once()
    assert await pages(rt, cid) == []
    assert smtp.mails == []


async def test_with_no_clinician_online_the_page_goes_at_once(
    client: httpx.AsyncClient, rt: Runtime, smtp: Inbox
) -> None:
    sup, _ = await make_agent(rt, name="sup", role="supervisor", languages=["es"])
    await make_agent(rt, name="away", role="agent_l2", languages=["es"], presence="offline")
    cid = await inbound(client, "crisis", "crisis", CRISIS)
    assert (await conv(client, cid))["assignee_id"] is None, "not silently the supervisor's"
    [page] = await pages(rt, cid)
    assert (page.reason, page.status) == ("no_clinician_online", "pending")
    assert [e.data["reason"] for e in await events(rt, cid, "supervisor.paged")] == [
        "no_clinician_online"
    ]
    await PageWorker(rt).run_once()
    [page] = await pages(rt, cid)
    assert page.status == "delivered"
    [(to, mail)] = smtp.mails
    assert to == [ONCALL]
    assert "No clinician is online" in mail.get_content()
    assert sup


async def test_a_page_that_cannot_be_delivered_is_recorded_as_failed(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    cid = await inbound(client, "crisis", "crisis", CRISIS)  # no email channel configured
    await PageWorker(rt).run_once()
    [page] = await pages(rt, cid)
    assert page.status == "failed"
    assert page.last_error == "channel email is not configured"
    assert len(await events(rt, cid, "page.failed")) == 1


async def test_first_line_agent_is_told_when_routing_moves_their_conversation(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    l1, token = await make_agent(rt, name="l1", role="agent_l1", languages=["es"])
    cid = await inbound(client, "u1", "m1", BOOKING)
    assert (await conv(client, cid))["assignee_id"] == l1
    await inbound(client, "u1", "m2", CRISIS)
    after = await conv(client, cid)
    assert (after["queue"], after["assignee_id"]) == ("second_line", None)
    [moved] = await events(rt, cid, "conversation.moved")
    assert moved.tier == 1
    assert moved.data == {
        "to_agent_id": l1,
        "queue": "second_line",
        "reason": "escalated by routing: crisis",
    }
    r = await client.get(f"/api/v1/conversations/{cid}", headers=auth(token))
    assert r.status_code == 410
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["title"] == "Conversation moved"
    assert (problem["moved_to_queue"], problem["reason"]) == (
        "second_line",
        "escalated by routing: crisis",
    )
    mine = await client.get("/api/v1/conversations?assignee=me", headers=auth(token))
    assert cid not in {c["id"] for c in mine.json()["items"]}
    # Another first-line agent, who never held it, learns nothing: a plain 404.
    _, other = await make_agent(rt, name="l1b", role="agent_l1", languages=["es"])
    r = await client.get(f"/api/v1/conversations/{cid}", headers=auth(other))
    assert r.status_code == 404


async def test_a_quiet_queue_with_clinicians_online_is_not_a_surge(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    await make_agent(rt, name="dr", role="agent_l2", languages=["es"], presence="offline")
    await make_agent(rt, name="dr2", role="agent_l2", languages=["es"], capacity=3)
    cid = await inbound(client, "u1", "m1", CLINICAL)
    ack = (await outbound(rt, cid))[0]
    assert ack.kind == "ack"
    assert ack.text == rt.policy.ack_text("es", 5, surge=False)
    assert "http" not in ack.text, "no self-service links on a quiet queue"
    assert "habitual" not in ack.text, "never 'busier than usual'"


async def test_urgent_medical_gets_the_emergency_number_never_a_wait(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    # The default policy: the warning-sign model finds the cardiac red flag itself.
    cid = await inbound(client, "u1", "m1", "I have crushing chest pain and my left arm is numb")
    sent = await outbound(rt, cid)
    assert [m.kind for m in sent] == ["emergency_ack"]
    assert "112" in sent[0].text
    assert "minute" not in sent[0].text
    await inbound(client, "u1", "m2", "the chest pain is worse")
    assert [m.kind for m in await outbound(rt, cid)] == ["emergency_ack"], "once"
