"""Erasure leaves nothing of the person behind, and export holds everything that erasure removes.

Found by an outside pass: merge chains deeper than one level, agents' free-text reasons, tags
and routing reasons, open queue work, shared stored files, and export gaps.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from models import (
    Assignment,
    Attachment,
    CallbackRequest,
    Contact,
    Conversation,
    ErasedIdentity,
    Event,
    Message,
    SlaTimer,
)
from router.files import AttachmentStore
from router.flows import privacy
from router.flows.contacts import identity_hash
from router.runtime import Runtime
from tests.conftest import ADMIN, auth, make_agent

SECRET = "tengo VIH y necesito la receta 93f1"
REASON = "la paciente Ana dice que tiene VIH"
BOOKING = "quiero cambiar mi cita del martes, soy Ana"  # first line, tagged


async def inbound(
    client: httpx.AsyncClient, ext: str, text: str = SECRET, **contact: Any
) -> tuple[int, int]:
    body = {
        "contact": {"external_id": ext, **contact},
        "message": {"external_id": f"{ext}-{len(text)}-{text[:4]}", "text": text},
    }
    r = await client.post("/api/v1/inbound", json=body, headers=ADMIN)
    assert r.status_code == 200, r.text
    cid = r.json()["conversation_id"]
    conv = (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()
    return cid, conv["contact_id"]


async def merge(client: httpx.AsyncClient, keep: int, other: int) -> None:
    r = await client.post(
        f"/api/v1/contacts/{keep}/merge", json={"other_contact_id": other}, headers=ADMIN
    )
    assert r.status_code == 200, r.text


async def test_erasure_and_export_follow_the_whole_merge_chain(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    _, a = await inbound(
        client, "pat-a", name="Ana García", phone="+34612345678", email="ana@example.org"
    )
    _, b = await inbound(client, "pat-b", name="Ana G.")
    _, c = await inbound(client, "pat-c")
    await merge(client, b, a)  # a → b
    await merge(client, c, b)  # b → c: a is two levels below c

    data = (await client.get(f"/api/v1/contacts/{c}/export", headers=ADMIN)).json()
    assert set(data["contact"]["merged_contact_ids"]) == {a, b}
    nested = {m["id"]: m for m in data["merged_contacts"]}
    assert nested[a]["name"] == "Ana García"
    assert nested[a]["attributes"]["unverified_email"] == "ana@example.org"
    assert nested[a]["merged_into_id"] == b

    r = await client.delete(f"/api/v1/contacts/{c}", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["erased"]["contacts"] == 3
    async with rt.db.session() as s:
        rows = list(await s.scalars(select(Contact).where(Contact.id.in_((a, b, c)))))
    assert [(x.name, x.attributes) for x in rows] == [(None, {})] * 3


async def test_erasure_scrubs_agents_reasons_routing_reasons_and_tags(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    l1, _ = await make_agent(rt, name="l1", role="agent_l1", languages=["es"])
    _, sup = await make_agent(rt, name="sup", role="supervisor", presence="away")
    cid, contact_id = await inbound(client, "pat-1", BOOKING, name="Ana García")
    h = auth(sup)
    for path, body in [
        ("assign", {"agent_id": l1, "reason": REASON}),
        ("escalate", {"reason": REASON}),
        ("transfer", {"queue": "first_line", "agent_id": l1, "reason": REASON}),
    ]:
        r = await client.post(f"/api/v1/conversations/{cid}/{path}", json=body, headers=h)
        assert r.status_code == 200, (path, r.text)
    conv = (await client.get(f"/api/v1/conversations/{cid}", headers=ADMIN)).json()
    assert conv["tags"], "routing tagged the conversation"

    r = await client.delete(f"/api/v1/contacts/{contact_id}", headers=ADMIN)
    assert r.status_code == 200, r.text
    async with rt.db.session() as s:
        c = await s.get(Conversation, cid)
        evs = list(await s.scalars(select(Event).where(Event.conversation_id == cid)))
        reasons = list(await s.scalars(select(Assignment.reason)))
    assert c is not None
    assert (c.tags, c.routing_reasons) == ([], [])
    assert all("VIH" not in r for r in reasons)
    assert not [e.type for e in evs if "VIH" in json.dumps(e.data, ensure_ascii=False)]
    # The anonymised trail: that it happened, when, and by whom.
    by_type = {e.type: e for e in evs}
    for kind in ("conversation.assigned", "conversation.escalated", "conversation.transferred"):
        assert by_type[kind].agent_id is not None
        assert by_type[kind].created_at is not None
    assert by_type["conversation.escalated"].data["queue"] == "second_line"


async def test_erasure_takes_the_person_out_of_the_queues(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    l1, _ = await make_agent(rt, name="l1", role="agent_l1", languages=["es"])
    cid, contact_id = await inbound(client, "pat-1", name="Ana García")
    now = rt.now()
    async with rt.db.session() as s:
        s.add(
            CallbackRequest(
                conversation_id=cid,
                contact_id=contact_id,
                phone="+34612345678",
                status="open",
                first_call_at=now,
                last_call_at=now,
                last_call_status="missed",
                next_attempt_at=now + timedelta(minutes=5),
                due_at=now + timedelta(hours=1),
            )
        )
        armed = list(
            await s.scalars(
                select(SlaTimer).where(
                    SlaTimer.conversation_id == cid, SlaTimer.next_fire_at.is_not(None)
                )
            )
        )
    assert armed, "the conversation's SLA timers were running"

    r = await client.delete(f"/api/v1/contacts/{contact_id}", headers=ADMIN)
    assert r.status_code == 200, r.text
    async with rt.db.session() as s:
        c = await s.get(Conversation, cid)
        timers = list(await s.scalars(select(SlaTimer).where(SlaTimer.conversation_id == cid)))
        cb = await s.scalar(select(CallbackRequest))
        open_assignments = list(
            await s.scalars(select(Assignment).where(Assignment.ended_at.is_(None)))
        )
    assert c is not None
    assert cb is not None
    assert (c.status, c.assignee_id, c.waiting_since) == ("closed", None, None)
    assert not open_assignments
    assert {(t.state, t.next_fire_at) for t in timers} == {("stopped", None)}
    assert (cb.status, cb.next_attempt_at, cb.phone) == ("cancelled", None, "[erased]")
    assert cb.closed_at is not None
    # Nothing fires for the erased person later.
    rt.clock.advance(days=2)  # type: ignore[attr-defined]
    from router.workers.sla import SlaScheduler

    assert await SlaScheduler(rt).run_once() == 0


async def test_erasure_keeps_a_stored_file_another_patient_still_references(
    client: httpx.AsyncClient, rt: Runtime, tmp_path: Path
) -> None:
    store = AttachmentStore(tmp_path / "store")
    shared = store.put(b"the same lab leaflet, sent to both")
    own = store.put(b"Ana's own lab result")
    c1, contact_1 = await inbound(client, "pat-1", name="Ana")
    c2, _ = await inbound(client, "pat-2", name="Bea")
    async with rt.db.session() as s:
        m1 = await s.scalar(select(Message.id).where(Message.conversation_id == c1))
        m2 = await s.scalar(select(Message.id).where(Message.conversation_id == c2))
        assert m1 is not None
        assert m2 is not None
        s.add_all(
            [
                Attachment(message_id=m1, url=shared, name="leaflet.pdf"),
                Attachment(message_id=m1, url=own, name="result.pdf"),
                Attachment(message_id=m2, url=shared, name="leaflet.pdf"),
            ]
        )
    async with rt.db.session() as s:
        _, files = await privacy.erase(s, contact_1, now=rt.now(), agent_id=None, store=store)
    privacy.delete_files(store, files)
    assert not store.path(own).exists()
    assert store.path(shared).exists(), "the other patient's copy is still referenced"
    assert store.get(shared) == b"the same lab leaflet, sent to both"


async def test_export_holds_notes_edits_reasons_callbacks_mail_refs_and_call_metadata(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    _, sup = await make_agent(rt, name="sup", role="supervisor", presence="away")
    cid, contact_id = await inbound(client, "pat-1", BOOKING, name="Ana García")
    r = await client.post(
        f"/api/v1/conversations/{cid}/messages",
        json={"text": "nota interna: llamar a su médico", "internal": True},
        headers=auth(sup),
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/api/v1/conversations/{cid}/escalate", json={"reason": REASON}, headers=auth(sup)
    )
    assert r.status_code == 200, r.text
    now = rt.now()
    ref = "email-store:" + "ab" * 32
    async with rt.db.session() as s:
        first = await s.scalar(select(Message).where(Message.conversation_id == cid))
        assert first is not None
        first.channel_meta = {
            "history": [{"text": "primera versión", "edited_at": now.isoformat()}],
            "raw_ref": ref,
        }
        call = Message(
            conversation_id=cid,
            direction="in",
            channel="calls",
            kind="call",
            text="missed call",
            channel_meta={"call_status": "no-answer", "duration_s": 0, "provider": "twilio"},
        )
        s.add(call)
        await s.flush()
        s.add(
            CallbackRequest(
                conversation_id=cid,
                contact_id=contact_id,
                phone="+34612345678",
                status="open",
                first_call_at=now,
                last_call_at=now,
                last_call_status="no-answer",
                last_message_id=call.id,
                note="prefers mornings",
            )
        )

    data = (await client.get(f"/api/v1/contacts/{contact_id}/export", headers=ADMIN)).json()
    (conv,) = data["conversations"]
    msgs = conv["messages"]
    assert "nota interna: llamar a su médico" in [m["text"] for m in msgs]
    by_text = {m["text"]: m for m in msgs}
    assert by_text[BOOKING]["previous_versions"][0]["text"] == "primera versión"
    assert by_text[BOOKING]["raw_ref"] == ref
    assert by_text["missed call"]["channel_meta"]["provider"] == "twilio"
    assert any(REASON in r for r in conv["routing_reasons"])
    assert any(REASON in (e["data"].get("reason") or "") for e in data["events"])
    (cb,) = conv["callbacks"]
    assert (cb["phone"], cb["note"], cb["status"]) == ("+34612345678", "prefers mornings", "open")


async def test_a_redelivery_after_erasure_is_a_fresh_contact_and_the_audit_can_tell(
    client: httpx.AsyncClient, rt: Runtime
) -> None:
    cid, contact_id = await inbound(
        client, "pat-1", name="Ana García", phone="+34612345678", verified=True
    )
    r = await client.delete(f"/api/v1/contacts/{contact_id}", headers=ADMIN)
    assert r.status_code == 200, r.text
    key = rt.settings.erasure_hmac_key()
    async with rt.db.session() as s:
        erased = list(await s.scalars(select(ErasedIdentity)))
    assert {(e.kind, e.contact_id) for e in erased} == {("app", contact_id), ("phone", contact_id)}
    assert {e.value_hash for e in erased} == {
        identity_hash(key, "app", "pat-1"),
        identity_hash(key, "phone", "+34612345678"),
    }
    dump = json.dumps([(e.kind, e.value_hash) for e in erased])
    assert "pat-1" not in dump
    assert "612345678" not in dump

    # The provider redelivers the very first message after the erasure.
    again, new_contact = await inbound(
        client, "pat-1", name="Ana García", phone="+34612345678", verified=True
    )
    assert again != cid
    assert new_contact != contact_id
    data = (await client.get(f"/api/v1/contacts/{new_contact}/export", headers=ADMIN)).json()
    assert data["contact"]["attributes"] == {"after_erasure": True}
    assert [c["id"] for c in data["conversations"]] == [again]
    assert data["contact"]["merged_contact_ids"] == []
    created = [e for e in data["events"] if e["type"] == "contact.created"]
    assert created[0]["data"] == {"after_erasure": True}
    # Someone never erased is not marked.
    _, other = await inbound(client, "pat-2", name="Bea")
    other_data = (await client.get(f"/api/v1/contacts/{other}/export", headers=ADMIN)).json()
    assert other_data["contact"]["attributes"] == {}
