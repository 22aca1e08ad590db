"""Generic JSON call logs: validation reasons, normalisation, metadata kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from channels.calls import generic
from channels.phones import e164
from router.errors import InvalidInput

DATA = Path(__file__).parents[3] / "data" / "calls" / "generic"
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def load(name: str) -> Any:
    return json.loads((DATA / f"{name}.json").read_text())


def phone(raw: str) -> str | None:
    return e164(raw, "ES")


def test_missed_call_normalised() -> None:
    msg = generic.normalise(generic.parse(load("missed_national")), now=NOW, e164=phone)
    assert msg.channel == "calls"
    assert msg.kind == "call"
    assert msg.external_id == "asterisk:1700000000.42:missed"
    assert msg.sender.external_id == "+34612345678"  # national format, default region ES
    assert msg.sender.phone_verified
    assert msg.text == ""
    assert msg.received_at == datetime(2026, 11, 26, 7, 15, tzinfo=UTC)
    assert msg.call is not None
    assert msg.call.status == "missed"
    assert msg.call.direction == "inbound"
    assert msg.direction == "in"
    assert msg.call.customer_phone == "+34612345678"
    assert msg.channel_meta["extra"] == {"queue_name": "recepcion", "trunk": "SIP/movistar-01"}


def test_voicemail_transcript_is_routed_text_answered_transcript_is_not() -> None:
    vm = generic.normalise(generic.parse(load("voicemail_crisis_es")), now=NOW, e164=phone)
    assert "quiero morir" in vm.text
    assert vm.attachments[0].kind == "recording"
    answered = generic.normalise(generic.parse(load("batch_after_outage")[2]), now=NOW, e164=phone)
    assert answered.text == ""
    assert "appointment" in answered.call.transcript
    assert answered.call.agent == "maria"
    assert answered.call.duration_s == 312


def test_outbound_customer_is_the_callee() -> None:
    msg = generic.normalise(generic.parse(load("batch_after_outage")[4]), now=NOW, e164=phone)
    assert msg.call.direction == "outbound"
    assert msg.sender.external_id == "+34612345678"


def test_anonymous_caller_is_accepted_without_a_phone() -> None:
    rec = {**load("missed_national"), "from": "anonymous"}
    msg = generic.normalise(generic.parse(rec), now=NOW, e164=phone)
    assert msg.sender.external_id == "anonymous:asterisk:1700000000.42"
    assert msg.call.customer_phone is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"status": "ringing"}, "status"),
        ({"provider": None}, "provider"),
        ({"direction": "sideways"}, "direction"),
        ({"started_at": "2026-11-26T08:15:00"}, "started_at"),  # no zone
        ({"duration_s": -5}, "duration_s"),
        ({"recording_url": "file:///etc/passwd"}, "recording_url"),
    ],
)
def test_invalid_records_say_why(change: dict[str, Any], reason: str) -> None:
    rec = {**load("missed_national"), "transcript": "secret words"}
    rec.update(change)
    rec = {k: v for k, v in rec.items() if v is not None}
    with pytest.raises(InvalidInput) as exc:
        generic.parse(rec)
    assert exc.value.detail.startswith(reason)
    assert "secret" not in exc.value.detail


def test_bad_customer_number_is_rejected_with_reason() -> None:
    with pytest.raises(InvalidInput, match="from: not a valid phone number"):
        generic.normalise(
            generic.parse({**load("missed_national"), "from": "12"}), now=NOW, e164=phone
        )


@pytest.mark.parametrize("record", [[], "call", 42, None])
def test_non_object_record_is_rejected(record: Any) -> None:
    with pytest.raises(InvalidInput, match="JSON object"):
        generic.parse(record)
