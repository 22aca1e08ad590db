"""`POST /webhooks/calls/twilio`: every status, duplicates, signatures, identities, crisis."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from models import Contact, ContactIdentity, Conversation, Event
from models.messages import InboundMessage, Sender
from router.flows import ingest
from router.runtime import Runtime
from tests.conftest import ADMIN
from tests.integration.channels.calls.support import (
    CALLER,
    call_messages,
    callbacks_of,
    event_types,
    post_twilio,
    twilio_params,
    twilio_sign,
)
from tests.support.fakes import FakeClock

TERMINAL = [
    ("status_completed", "answered", False),
    ("status_busy", "busy", True),
    ("status_no_answer", "missed", True),
    ("status_canceled", "missed", True),
    ("status_failed", "failed", True),
    ("transcription_voicemail", "voicemail", True),
]


@pytest.mark.parametrize(("name", "status", "callback"), TERMINAL)
async def test_terminal_status_is_logged(
    calls_client: httpx.AsyncClient,
    calls_rt: Runtime,
    clock: FakeClock,
    name: str,
    status: str,
    callback: bool,
) -> None:
    r = await post_twilio(calls_client, twilio_params(name, clock))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "stored"
    (msg,) = await call_messages(calls_rt)
    assert msg.id == body["message_id"]
    assert msg.channel == "calls"
    assert msg.channel_meta["call_status"] == status
    conv = (
        await calls_client.get(f"/api/v1/conversations/{body['conversation_id']}", headers=ADMIN)
    ).json()
    assert conv["channel"] == "calls"
    assert ("callback" in conv["tags"]) is callback
    assert ("call" in conv["tags"]) is (not callback)
    if callback:
        assert conv["priority"] == "high"
    async with calls_rt.db.session() as s:
        (logged,) = await s.scalars(select(Event).where(Event.type == "call.logged"))
    assert logged.data["call_status"] == status
    assert logged.data["message_id"] == msg.id
    assert logged.data["direction"] == "inbound"
    cbs = await callbacks_of(calls_rt)
    assert len(cbs) == (1 if callback else 0)
    if callback:
        assert cbs[0].phone == CALLER
        assert cbs[0].last_call_status == status
        assert cbs[0].missed_count == 1
    # the call is in the conversation timeline, recordings by reference
    timeline = (
        await calls_client.get(f"/api/v1/conversations/{conv['id']}/messages", headers=ADMIN)
    ).json()["items"]
    calls = [m for m in timeline if m["kind"] == "call"]
    assert [m["id"] for m in calls] == [msg.id]
    if name in ("status_completed", "transcription_voicemail"):
        assert calls[0]["attachments"][0]["kind"] == "recording"


@pytest.mark.parametrize(
    "name", ["status_queued", "status_initiated", "status_ringing", "status_in-progress"]
)
async def test_in_flight_status_is_acknowledged_and_ignored(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock, name: str
) -> None:
    r = await post_twilio(calls_client, twilio_params(name, clock))
    assert r.status_code == 200
    assert r.json() == {"status": "ignored", "conversation_id": None, "message_id": None}
    assert await call_messages(calls_rt) == []
    async with calls_rt.db.session() as s:
        assert list(await s.scalars(select(Conversation))) == []


async def test_a_whole_call_lifecycle_makes_one_entry(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    for name in ("status_initiated", "status_ringing", "status_in-progress", "status_completed"):
        assert (await post_twilio(calls_client, twilio_params(name, clock))).status_code == 200
    assert len(await call_messages(calls_rt)) == 1


async def test_duplicate_delivery_changes_nothing(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    params = twilio_params("status_no_answer", clock)
    first = (await post_twilio(calls_client, params)).json()
    events_before = await event_types(calls_rt, "")
    again = await post_twilio(calls_client, params)
    assert again.status_code == 200
    assert again.json() == {**first, "status": "duplicate"}
    assert len(await call_messages(calls_rt)) == 1
    (cb,) = await callbacks_of(calls_rt)
    assert cb.missed_count == 1
    assert await event_types(calls_rt, "") == events_before


async def test_same_call_other_status_is_another_entry(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    # The voicemail of a call Twilio also reports as completed: two entries, one request.
    await post_twilio(calls_client, twilio_params("status_completed", clock))
    await post_twilio(calls_client, twilio_params("transcription_voicemail", clock))
    assert [m.channel_meta["call_status"] for m in await call_messages(calls_rt)] == [
        "answered",
        "voicemail",
    ]
    assert len(await callbacks_of(calls_rt)) == 1


@pytest.mark.parametrize(
    "tamper", ["wrong-token", "changed-param", "no-header", "other-url", "query-dropped"]
)
async def test_bad_signature_is_403_and_stores_nothing(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock, tamper: str
) -> None:
    params = twilio_params("status_no_answer", clock)
    if tamper == "wrong-token":
        r = await post_twilio(calls_client, params, token="not-the-token")
    elif tamper == "changed-param":
        sig = twilio_sign(
            "twilio-auth-token-for-tests",
            "https://careline.example/webhooks/calls/twilio",
            params,
        )
        r = await post_twilio(calls_client, {**params, "From": "+14155550000"}, signature=sig)
    elif tamper == "no-header":
        r = await post_twilio(calls_client, params, signature="")
    elif tamper == "other-url":
        sig = twilio_sign(
            "twilio-auth-token-for-tests", "https://evil.example/webhooks/calls/twilio", params
        )
        r = await post_twilio(calls_client, params, signature=sig)
    else:
        # signed without the query string the request carries
        sig = twilio_sign(
            "twilio-auth-token-for-tests", "https://careline.example/webhooks/calls/twilio", params
        )
        r = await post_twilio(calls_client, params, query="clinic=madrid", signature=sig)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    assert await call_messages(calls_rt) == []


async def test_query_string_is_part_of_the_signed_url(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    r = await post_twilio(
        calls_client, twilio_params("status_busy", clock), query="clinic=madrid&line=2"
    )
    assert r.status_code == 200, r.text


async def test_unconfigured_token_is_404(
    bare_client: httpx.AsyncClient, rt: Runtime, clock: FakeClock
) -> None:
    r = await post_twilio(bare_client, twilio_params("status_busy", clock))
    assert r.status_code == 404
    assert await call_messages(rt) == []


async def test_malformed_form_is_422_not_500(calls_client: httpx.AsyncClient) -> None:
    r = await post_twilio(calls_client, {"CallStatus": "completed", "From": CALLER})
    assert r.status_code == 422
    r = await post_twilio(calls_client, {"CallSid": "CA1", "CallStatus": "exploded"})
    assert r.status_code == 422


async def test_anonymous_callers_stay_apart_and_get_no_callback(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    a = (await post_twilio(calls_client, twilio_params("anonymous_no_answer", clock))).json()
    b = (
        await post_twilio(
            calls_client,
            twilio_params(
                "anonymous_no_answer", clock, CallSid="CA00000000000000000000000000000a02"
            ),
        )
    ).json()
    assert a["conversation_id"] != b["conversation_id"]
    assert await callbacks_of(calls_rt) == []  # nobody to ring back
    async with calls_rt.db.session() as s:
        kinds = {(i.kind, i.value) for i in await s.scalars(select(ContactIdentity))}
    assert ("phone", "+266696687") not in kinds


async def test_caller_merges_with_telegram_contact_sharing_the_phone(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    # A Telegram user shared their contact (a verified phone) and wrote to us.
    tg = InboundMessage(
        channel="telegram",
        external_id="tg:1:10",
        sender=Sender(external_id="777000", name="Ana", phone=CALLER, phone_verified=True),
        text="Hola, quiero cambiar mi cita",
        received_at=clock.now,
    )
    async with calls_rt.db.session() as s:
        tg_res = await ingest.ingest(s, calls_rt, tg)
    r = await post_twilio(calls_client, twilio_params("status_no_answer", clock))
    body = r.json()
    assert body["conversation_id"] == tg_res.conversation_id  # joins the open conversation
    async with calls_rt.db.session() as s:
        conv = await s.get(Conversation, body["conversation_id"])
        assert conv is not None
        idents = list(
            await s.scalars(
                select(ContactIdentity).where(ContactIdentity.contact_id == conv.contact_id)
            )
        )
    assert {(i.kind, i.value) for i in idents} == {("telegram", "777000"), ("phone", CALLER)}
    (cb,) = await callbacks_of(calls_rt)
    assert cb.contact_id == conv.contact_id


async def test_telegram_phone_shared_after_the_call_merges_the_caller(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    call = (await post_twilio(calls_client, twilio_params("status_busy", clock))).json()
    tg = InboundMessage(
        channel="telegram",
        external_id="tg:1:11",
        sender=Sender(external_id="777001", phone=CALLER, phone_verified=True),
        text="I called you earlier",
        received_at=clock.now,
    )
    async with calls_rt.db.session() as s:
        res = await ingest.ingest(s, calls_rt, tg)
    assert res.conversation_id == call["conversation_id"]


async def test_crisis_words_in_voicemail_make_it_urgent_second_line(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    params = twilio_params(
        "transcription_voicemail",
        clock,
        TranscriptionText="Please call me back, I can't go on anymore and I want to end my life.",
    )
    body = (await post_twilio(calls_client, params)).json()
    conv = (
        await calls_client.get(f"/api/v1/conversations/{body['conversation_id']}", headers=ADMIN)
    ).json()
    assert conv["queue"] == "second_line"
    assert conv["priority"] == "urgent"
    assert {"crisis", "self_harm", "callback"} <= set(conv["tags"])
    (cb,) = await callbacks_of(calls_rt)
    assert cb.priority == "urgent"
    assert cb.queue == "second_line"
    assert cb.due_at is not None
    assert (cb.due_at - cb.first_call_at).total_seconds() == 5 * 60  # second_line urgent
    assert "crisis.detected" in await event_types(calls_rt, "crisis.")
    # events carry ids and metadata, never the transcript (routing reasons quote only the
    # matched lexicon entry)
    async with calls_rt.db.session() as s:
        for ev in await s.scalars(select(Event)):
            assert "call me back" not in str(ev.data)
            if ev.type.startswith("callback."):
                assert "life" not in str(ev.data)


async def test_unparseable_caller_is_not_a_verified_phone(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    r = await post_twilio(calls_client, twilio_params("status_no_answer", clock, From="12"))
    assert r.status_code == 200, r.text
    async with calls_rt.db.session() as s:
        idents = {(i.kind, i.value, i.verified) for i in await s.scalars(select(ContactIdentity))}
    assert ("phone", "raw:12", False) in idents


async def test_nul_and_overlong_caller_name_are_not_a_500(
    calls_client: httpx.AsyncClient, calls_rt: Runtime, clock: FakeClock
) -> None:
    params = twilio_params("status_no_answer", clock, CallerName="Lu\x00cía " + "X" * 400)
    r = await post_twilio(calls_client, params)
    assert r.status_code == 200, r.text
    async with calls_rt.db.session() as s:
        names = [c.name for c in await s.scalars(select(Contact))]
    assert names
    assert all(n is not None and "\x00" not in n and len(n) <= 200 for n in names)
