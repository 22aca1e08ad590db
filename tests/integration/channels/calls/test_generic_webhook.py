"""`POST /webhooks/calls`: one record or a batch, signed; bad records reported per index."""

from __future__ import annotations

import httpx
import pytest

from router.runtime import Runtime
from tests.conftest import ADMIN
from tests.integration.channels.calls.support import (
    call_messages,
    callbacks_of,
    generic_record,
    post_generic,
)


async def test_single_record_stored_with_metadata(
    calls_client: httpx.AsyncClient, calls_rt: Runtime
) -> None:
    r = await post_generic(calls_client, generic_record("missed_national"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["duplicate"] is False
    (msg,) = await call_messages(calls_rt)
    assert msg.external_id == "asterisk:1700000000.42:missed"
    assert msg.channel_meta["extra"] == {"queue_name": "recepcion", "trunk": "SIP/movistar-01"}
    (cb,) = await callbacks_of(calls_rt)
    assert cb.phone == "+34612345678"
    again = await post_generic(calls_client, generic_record("missed_national"))
    assert again.json() == {**body, "duplicate": True}
    assert len(await call_messages(calls_rt)) == 1


async def test_batch_keeps_good_records_and_reports_the_bad_one(
    calls_client: httpx.AsyncClient, calls_rt: Runtime
) -> None:
    batch = generic_record("batch_after_outage")
    r = await post_generic(calls_client, batch)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [a["index"] for a in body["accepted"]] == [0, 2, 3, 4]
    assert [x["index"] for x in body["rejected"]] == [1]
    assert body["rejected"][0]["reason"].startswith("status:")
    assert [m.external_id for m in await call_messages(calls_rt)] == [
        "asterisk:cdr-1001:missed",
        "asterisk:cdr-1003:answered",
        "asterisk:cdr-1004:missed",
        "asterisk:cdr-1005:answered",
    ]
    # the outbound answered call (index 4) reached the customer of index 0: request done
    cbs = await callbacks_of(calls_rt)
    assert [(c.phone, c.status) for c in cbs] == [
        ("+34612345678", "done"),
        ("+34699112233", "open"),
    ]
    # re-sending the whole batch after a timeout is safe
    again = (await post_generic(calls_client, batch)).json()
    assert all(a["duplicate"] for a in again["accepted"])
    assert len(await call_messages(calls_rt)) == 4


async def test_batch_reports_a_bad_number_and_a_non_object(
    calls_client: httpx.AsyncClient, calls_rt: Runtime
) -> None:
    good = generic_record("missed_national")
    r = await post_generic(calls_client, [good, {**good, "call_id": "x2", "from": "12"}, "junk"])
    body = r.json()
    assert [a["index"] for a in body["accepted"]] == [0]
    assert body["rejected"] == [
        {"index": 1, "reason": "from: not a valid phone number"},
        {"index": 2, "reason": "a call record must be a JSON object"},
    ]


@pytest.mark.parametrize(
    ("payload", "raw", "detail"),
    [
        ({"from": "12"}, None, "from: not a valid phone number"),
        ({"status": "ringing"}, None, "status"),
        (None, b"not json", "not JSON"),
        (None, b"\xff\xfe", "not JSON"),
    ],
)
async def test_bad_single_record_is_422_with_reason(
    calls_client: httpx.AsyncClient,
    calls_rt: Runtime,
    payload: dict[str, str] | None,
    raw: bytes | None,
    detail: str,
) -> None:
    record = generic_record("missed_national", **(payload or {}))
    r = await post_generic(calls_client, record, raw=raw)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert detail in r.json()["detail"]
    assert await call_messages(calls_rt) == []


async def test_bad_signature_is_401(calls_client: httpx.AsyncClient, calls_rt: Runtime) -> None:
    r = await post_generic(calls_client, generic_record("missed_national"), secret="wrong")
    assert r.status_code == 401
    r = await calls_client.post("/webhooks/calls", json=generic_record("missed_national"))
    assert r.status_code == 401
    assert await call_messages(calls_rt) == []


async def test_unconfigured_secret_is_404(bare_client: httpx.AsyncClient) -> None:
    r = await post_generic(bare_client, generic_record("missed_national"))
    assert r.status_code == 404


async def test_oversized_batch_is_refused(calls_client: httpx.AsyncClient) -> None:
    good = generic_record("missed_national")
    r = await post_generic(calls_client, [good] * 1001)
    assert r.status_code == 413


async def test_spanish_crisis_voicemail_goes_urgent_to_second_line(
    calls_client: httpx.AsyncClient, calls_rt: Runtime
) -> None:
    body = (await post_generic(calls_client, generic_record("voicemail_crisis_es"))).json()
    conv = (
        await calls_client.get(f"/api/v1/conversations/{body['conversation_id']}", headers=ADMIN)
    ).json()
    assert (conv["queue"], conv["priority"]) == ("second_line", "urgent")
    assert "crisis" in conv["tags"]
    assert conv["language"] == "es"
    (cb,) = await callbacks_of(calls_rt)
    assert (cb.queue, cb.priority, cb.last_call_status) == ("second_line", "urgent", "voicemail")
