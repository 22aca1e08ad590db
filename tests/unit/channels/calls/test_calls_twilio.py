"""Twilio Voice callbacks: signature (against Twilio's published vector) and normalisation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from channels.calls import twilio
from channels.phones import e164
from router.errors import Forbidden, InvalidInput

DATA = Path(__file__).parents[3] / "data" / "calls" / "twilio"
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def load(name: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((DATA / f"{name}.json").read_text())
    return data


def phone(raw: str) -> str | None:
    return e164(raw, "ES")


def published_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's algorithm as its security guide states it, written out independently:
    sort the POST parameters by name, append each name and value to the URL, HMAC-SHA1 with
    the auth token, base64."""
    data = url
    for name in sorted(params):
        data += name + params[name]
    mac = hmac.new(token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def test_signature_matches_twilios_published_example() -> None:
    v: dict[str, Any] = json.loads((DATA / "signature_vector.json").read_text())
    assert published_signature(v["auth_token"], v["url"], v["params"]) == v["signature"]
    assert twilio.signature(v["auth_token"], v["url"], v["params"].items()) == v["signature"]
    twilio.verify_signature(v["auth_token"], v["url"], v["params"].items(), v["signature"])


@pytest.mark.parametrize(
    ("change", "header"),
    [
        ("token", None),
        ("param", None),
        ("url", None),
        (None, ""),
        (None, "RSOYDt4T1cUTdK1PDd93/VVr8B8"),  # truncated
    ],
)
def test_wrong_signature_is_forbidden(change: str | None, header: str | None) -> None:
    v: dict[str, Any] = json.loads((DATA / "signature_vector.json").read_text())
    token, url, params = v["auth_token"], v["url"], dict(v["params"])
    if change == "token":
        token = "54321"
    elif change == "param":
        params["Digits"] = "1235"
    elif change == "url":
        url = url.replace("foo=1", "foo=2")
    with pytest.raises(Forbidden):
        twilio.verify_signature(
            token, url, params.items(), v["signature"] if header is None else header
        )


@pytest.mark.parametrize(
    ("name", "status", "direction"),
    [
        ("status_completed", "answered", "inbound"),
        ("status_busy", "busy", "inbound"),
        ("status_no_answer", "missed", "inbound"),
        ("status_canceled", "missed", "inbound"),
        ("status_failed", "failed", "inbound"),
        ("transcription_voicemail", "voicemail", "inbound"),
        ("outbound_completed", "answered", "outbound"),
        ("outbound_no_answer", "missed", "outbound"),
    ],
)
def test_terminal_statuses_become_call_logs(name: str, status: str, direction: str) -> None:
    params = load(name)
    msg = twilio.normalise(params, now=NOW, e164=phone)
    assert msg is not None
    assert msg.channel == "calls"
    assert msg.kind == "call"
    assert msg.call.status == status
    assert msg.call.direction == direction
    assert msg.call.provider == "twilio"
    assert msg.call.call_id == params["CallSid"]
    key = "voicemail" if status == "voicemail" else params["CallStatus"]
    assert msg.external_id == f"twilio:{params['CallSid']}:{key}"
    # the customer is the caller on inbound calls and the callee on outbound ones
    assert msg.sender.external_id == "+14158675310"
    assert msg.sender.phone == "+14158675310"
    assert msg.sender.phone_verified
    assert msg.call.customer_phone == "+14158675310"
    # the call's own time, from Twilio's RFC 2822 Timestamp (a transcription has none)
    assert msg.received_at.year == (2026 if status == "voicemail" else 2010)


@pytest.mark.parametrize(
    "name", ["status_queued", "status_initiated", "status_ringing", "status_in-progress"]
)
def test_in_flight_statuses_are_ignored(name: str) -> None:
    assert twilio.normalise(load(name), now=NOW, e164=phone) is None


def test_completed_call_details_and_recording_reference() -> None:
    msg = twilio.normalise(load("status_completed"), now=NOW, e164=phone)
    assert msg is not None
    assert msg.text == ""
    assert msg.call.duration_s == 142
    assert msg.received_at == datetime(2010, 8, 16, 3, 47, 23, tzinfo=UTC)
    (rec,) = msg.attachments
    assert rec.kind == "recording"
    assert rec.url.startswith("https://api.twilio.com/")
    assert rec.meta == {"sid": "RE1234567890abcdef1234567890abcdef", "duration_s": 140}
    # unknown parameters are kept, not dropped
    assert msg.channel_meta["params"]["CallbackSource"] == "call-progress-events"
    assert msg.channel_meta["params"]["FromCity"] == "SAN FRANCISCO"


def test_voicemail_transcript_is_the_text() -> None:
    params = load("transcription_voicemail")
    msg = twilio.normalise(params, now=NOW, e164=phone)
    assert msg is not None
    assert msg.text == params["TranscriptionText"]
    assert "TranscriptionText" not in msg.channel_meta["params"]
    assert msg.attachments[0].kind == "recording"
    assert msg.received_at == NOW  # a transcription callback has no Timestamp


def test_withheld_numbers_get_a_per_call_identity() -> None:
    a = twilio.normalise(load("anonymous_no_answer"), now=NOW, e164=phone)
    other = {**load("anonymous_no_answer"), "CallSid": "CA00000000000000000000000000000a02"}
    b = twilio.normalise(other, now=NOW, e164=phone)
    assert a is not None
    assert b is not None
    assert a.sender.external_id == "anonymous:CA00000000000000000000000000000a01"
    assert a.sender.external_id != b.sender.external_id
    assert a.sender.phone is None
    assert a.call.customer_phone is None
    assert a.call.from_ == "+266696687"


@pytest.mark.parametrize(
    ("raw", "identity"),
    [
        ("client:alice", "raw:client:alice"),
        ("12345", "raw:12345"),
        ("sip:100@pbx.example", "raw:100"),
    ],
)
def test_unparseable_numbers_keep_a_stable_raw_identity(raw: str, identity: str) -> None:
    msg = twilio.normalise({**load("status_busy"), "From": raw}, now=NOW, e164=phone)
    assert msg is not None
    assert msg.sender.external_id == identity
    assert msg.sender.phone is None
    assert msg.call.from_ == raw


def test_national_number_uses_the_default_region() -> None:
    msg = twilio.normalise({**load("status_busy"), "From": "612 34 56 78"}, now=NOW, e164=phone)
    assert msg is not None
    assert msg.sender.external_id == "+34612345678"


def test_future_timestamp_is_clamped_and_bad_one_ignored() -> None:
    future = twilio.normalise(
        {**load("status_busy"), "Timestamp": "Tue, 01 Jan 2030 00:00:00 +0000"}, now=NOW, e164=phone
    )
    junk = twilio.normalise({**load("status_busy"), "Timestamp": "yesterday"}, now=NOW, e164=phone)
    assert future is not None
    assert junk is not None
    assert future.received_at == NOW
    assert junk.received_at == NOW


@pytest.mark.parametrize(
    "params",
    [
        {"CallStatus": "completed"},
        {"CallSid": "CA../../etc", "CallStatus": "completed"},
        {"CallSid": "CA123", "CallStatus": "exploded"},
        {"CallSid": "CA123"},
    ],
)
def test_malformed_callbacks_are_invalid_input(params: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        twilio.normalise(params, now=NOW, e164=phone)
