"""Generic signed JSON call logs (any PBX, CRM export or provider) → `InboundMessage`.

One record:
`{provider, call_id, direction, from, to, status, started_at, duration_s, recording_url?,
transcript?, agent?, ...}`; unknown fields are kept in `channel_meta["extra"]`. A batch is a
JSON array of such records (a PBX uploading its call-detail records after an outage).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from channels.calls.common import CallStatus, PhoneNormaliser, caller, recording
from models.messages import CallLog, InboundMessage
from router.errors import InvalidInput

MAX_BATCH = 1000


class GenericCall(BaseModel):
    """One call-detail record; extra fields are allowed and kept as metadata."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    provider: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    call_id: str = Field(min_length=1, max_length=200)
    direction: Literal["inbound", "outbound"]
    from_: str = Field(alias="from", min_length=1, max_length=100)
    to: str = Field(min_length=1, max_length=100)
    status: CallStatus
    started_at: AwareDatetime
    duration_s: int = Field(default=0, ge=0, le=7 * 86400)
    recording_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://")
    transcript: str | None = Field(default=None, max_length=20_000)
    agent: str | None = Field(default=None, max_length=200)
    caller_name: str | None = Field(default=None, max_length=200)


def describe(exc: ValidationError) -> str:
    """Where and what, never the offending value (it may be a transcript)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False)[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "record"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def parse(record: Any) -> GenericCall:
    """Validate one record or raise `InvalidInput` with the reason."""
    if not isinstance(record, dict):
        raise InvalidInput("a call record must be a JSON object")
    try:
        return GenericCall.model_validate(record)
    except ValidationError as exc:
        raise InvalidInput(describe(exc)) from exc


def normalise(call: GenericCall, *, now: datetime, e164: PhoneNormaliser) -> InboundMessage:
    """Pure: one validated record → one call log. The customer's number must parse (422
    otherwise): for a generic provider an unparseable number is a data error to fix."""
    customer_raw = call.from_ if call.direction == "inbound" else call.to
    field = "from" if call.direction == "inbound" else "to"
    sender, phone = caller(customer_raw, e164, call_key=f"{call.provider}:{call.call_id}")
    if phone is None and sender.external_id.startswith("raw:"):
        raise InvalidInput(f"{field}: not a valid phone number")
    is_voicemail = call.status == "voicemail"
    log = CallLog(
        status=call.status,
        direction=call.direction,
        provider=call.provider,
        call_id=call.call_id,
        from_=call.from_,
        to=call.to,
        customer_phone=phone,
        duration_s=call.duration_s,
        agent=call.agent,
        started_at=call.started_at.isoformat(),
        # An answered call's transcript mixes agent and customer: kept for the record, not
        # routed (an agent saying "suicide prevention" must not raise a crisis).
        transcript=call.transcript if call.transcript and not is_voicemail else None,
    )
    if call.caller_name:
        sender = sender.model_copy(update={"name": call.caller_name})
    return InboundMessage(
        channel="calls",
        external_id=f"{call.provider}:{call.call_id}:{call.status}",
        sender=sender,
        text=(call.transcript or "").strip() if is_voicemail else "",
        kind="call",
        direction="out" if call.direction == "outbound" else "in",
        call=log,
        attachments=recording(call.recording_url),
        received_at=min(call.started_at, now),
        channel_meta={"extra": dict(call.model_extra or {})},
    )
