"""Twilio Voice status callbacks (`application/x-www-form-urlencoded`) → `InboundMessage`.

Twilio posts one callback per status change of a call. Only terminal statuses are call-log
entries; queued/initiated/ringing/in-progress are acknowledged and dropped. A voicemail is
recognised by the transcription callback (`transcribeCallback` of `<Record>` pointed at the
same URL): it carries `TranscriptionText`/`TranscriptionStatus` and the recording.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from channels.calls.common import CallStatus, PhoneNormaliser, caller, recording, to_int
from models.messages import CallLog, InboundMessage
from router.errors import Forbidden, InvalidInput

# Twilio CallStatus → our call_status. "canceled" is a call hung up before anyone answered,
# which is a missed call to the customer.
TERMINAL: dict[str, CallStatus] = {
    "completed": "answered",
    "busy": "busy",
    "no-answer": "missed",
    "canceled": "missed",
    "failed": "failed",
}
IN_FLIGHT = frozenset({"queued", "initiated", "ringing", "in-progress"})
# Parameters mapped to named meta keys (or to the text); the rest are kept under "params".
_MAPPED = frozenset(
    {
        "CallSid",
        "CallStatus",
        "Direction",
        "From",
        "To",
        "CallDuration",
        "Timestamp",
        "RecordingUrl",
        "RecordingSid",
        "RecordingDuration",
        "TranscriptionText",
        "TranscriptionStatus",
        "TranscriptionSid",
        "CallerName",
    }
)
_MAX_SID = 64


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's `X-Twilio-Signature`: base64 HMAC-SHA1, keyed with the auth token, of the full
    URL followed by every POST parameter name+value, sorted by name (then value)."""
    payload = url + "".join(k + v for k, v in sorted(set(params)))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_signature(
    auth_token: str, url: str, params: Iterable[tuple[str, str]], header: str | None
) -> None:
    """403 unless `header` is the signature of this request (constant-time comparison)."""
    if not header:
        raise Forbidden("missing X-Twilio-Signature header")
    expected = signature(auth_token, url, params)
    if not hmac.compare_digest(expected.encode(), header.strip().encode()):
        raise Forbidden("bad X-Twilio-Signature")


def _when(raw: str | None, now: datetime) -> datetime:
    """Twilio's `Timestamp` (RFC 2822), never later than `now`; `now` when absent or odd."""
    if not raw:
        return now
    try:
        at = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return now
    if at.tzinfo is None:
        return now
    return min(at, now)


def normalise(
    params: Mapping[str, str], *, now: datetime, e164: PhoneNormaliser
) -> InboundMessage | None:
    """Pure: one status (or transcription) callback → one call log, or None when the status
    is not terminal. Raises `InvalidInput` when CallSid or CallStatus is missing or unknown.
    """
    sid = params.get("CallSid", "").strip()
    provider_status = params.get("CallStatus", "").strip().lower()
    if not sid or len(sid) > _MAX_SID or not sid.isalnum():
        raise InvalidInput("CallSid is missing or malformed")
    direction = "outbound" if params.get("Direction", "").startswith("outbound") else "inbound"
    is_voicemail = direction == "inbound" and (
        "TranscriptionText" in params or "TranscriptionStatus" in params
    )
    status: CallStatus
    if is_voicemail:
        status = "voicemail"
    elif provider_status in TERMINAL:
        status = TERMINAL[provider_status]
    elif provider_status in IN_FLIGHT:
        return None
    else:
        raise InvalidInput("CallStatus is missing or unknown")

    raw_from, raw_to = params.get("From", ""), params.get("To", "")
    customer_raw = raw_from if direction == "inbound" else raw_to
    sender, phone = caller(customer_raw, e164, call_key=sid, name=params.get("CallerName") or None)
    log = CallLog(
        status=status,
        direction=direction,
        provider="twilio",
        call_id=sid,
        from_=raw_from,
        to=raw_to,
        customer_phone=phone,
        duration_s=to_int(params.get("CallDuration")),
    )
    # What only Twilio reports, kept for the record.
    meta: dict[str, Any] = {
        "provider_status": provider_status or None,
        "provider_direction": params.get("Direction") or None,
        "params": {k: v for k, v in params.items() if k not in _MAPPED},
    }
    if is_voicemail:
        meta["transcription_status"] = params.get("TranscriptionStatus") or None
    # One log entry per call and status: a redelivered callback is a no-op. The voicemail
    # gets its own key because Twilio also reports the same call as "completed".
    key = "voicemail" if is_voicemail else provider_status
    return InboundMessage(
        channel="calls",
        external_id=f"twilio:{sid}:{key}",
        sender=sender,
        # Only a voicemail's transcript is the customer's words; it is routed like any text.
        text=(params.get("TranscriptionText") or "").strip() if is_voicemail else "",
        kind="call",
        direction="out" if direction == "outbound" else "in",
        call=log,
        attachments=recording(
            params.get("RecordingUrl"),
            sid=params.get("RecordingSid"),
            duration_s=to_int(params.get("RecordingDuration")),
        ),
        received_at=_when(params.get("Timestamp"), now),
        channel_meta=meta,
    )
