"""Webhook authenticity checks shared by channels. Constant-time comparisons only.

`X-Careline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "{t}.{body}")>` (Stripe's
scheme): the timestamp is signed with the body, so a captured request replays only inside
`SIGNATURE_TOLERANCE_S` (5 minutes). The old body-only `sha256=<hex>` form replays forever; it
is still accepted while `SIGNATURE_LEGACY` is on (the transition period), with a warning.

Each use has its own key (`inbound_key`, `callback_key`, `link_key`): unset, each is derived
from WEBHOOK_SECRET with a distinct label, so a leaked callback key (held by the app back-end)
forges neither inbound webhooks nor Telegram link tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from typing import Any

from pydantic import SecretStr

from router.errors import NotFound, Unauthorized

log = logging.getLogger(__name__)
_legacy_warned = False  # the deprecation is logged once per process

DEFAULT_TOLERANCE_S = 300
INBOUND_LABEL = "careline inbound webhook v1"
CALLBACK_LABEL = "careline app callback v1"
LINK_LABEL = "careline telegram link v1"
BOUNCE_LABEL = "careline email bounce v1"
RATING_LABEL = "careline email rating v1"
_V1 = re.compile(r"^[0-9a-f]{64}$")


def configured(secret: SecretStr | None, channel: str) -> str:
    """The secret's value, or 404: an empty secret would verify anything, so the webhook
    does not exist until it is configured."""
    value = secret.get_secret_value() if secret is not None else ""
    if not value:
        raise NotFound(f"the {channel} webhook is not configured")
    return value


def derive_key(secret: str, label: str) -> str:
    """A key for one purpose from the shared secret (HKDF-expand with a single block)."""
    return hmac.new(secret.encode(), label.encode(), hashlib.sha256).hexdigest()


def _key(settings: Any, name: str, label: str) -> str | None:
    own: SecretStr | None = getattr(settings, name, None)
    if own is not None and own.get_secret_value():
        return own.get_secret_value()
    base: SecretStr | None = getattr(settings, "webhook_secret", None)
    if base is None or not base.get_secret_value():
        return None
    return derive_key(base.get_secret_value(), label)


def inbound_key(settings: Any) -> str | None:
    """Checks `X-Careline-Signature` on the email and generic call webhooks."""
    return _key(settings, "inbound_webhook_secret", INBOUND_LABEL)


def callback_key(settings: Any) -> str | None:
    """Signs replies pushed to `APP_CALLBACK_URL`."""
    return _key(settings, "app_callback_secret", CALLBACK_LABEL)


def link_key(settings: Any) -> str | None:
    """Checks Telegram deep-link tokens minted by the app back-end."""
    return _key(settings, "telegram_link_secret", LINK_LABEL)


def bounce_key(settings: Any) -> bytes | None:
    """Tags our e-mail return paths (VERP), so only a real bounce can fail a message."""
    base: SecretStr | None = getattr(settings, "webhook_secret", None)
    if base is None or not base.get_secret_value():
        return None  # no stable key: no return path is signed and no bounce is believed
    return derive_key(base.get_secret_value(), BOUNCE_LABEL).encode()


def rating_key(settings: Any) -> str | None:
    """Signs the one-click rating links in e-mail (conversation, score, expiry). Derived from
    WEBHOOK_SECRET only: without it no link is minted, so e-mail is not asked to rate."""
    base: SecretStr | None = getattr(settings, "webhook_secret", None)
    if base is None or not base.get_secret_value():
        return None
    return derive_key(base.get_secret_value(), RATING_LABEL)


def legacy_secret(settings: Any) -> str | None:
    """WEBHOOK_SECRET itself, accepted only while `SIGNATURE_LEGACY` is on."""
    if not getattr(settings, "signature_legacy", True):
        return None
    base: SecretStr | None = getattr(settings, "webhook_secret", None)
    return base.get_secret_value() if base is not None and base.get_secret_value() else None


def hmac_sha256_header(secret: str, body: bytes) -> str:
    """The deprecated body-only form, `sha256=<hex>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def timestamped_header(secret: str, body: bytes, *, t: int) -> str:
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_careline_signature(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    now: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    legacy_secret: str | None = None,
) -> None:
    """`t=<unix>,v1=<hex>` signed with `secret` and within `tolerance_s` of `now`, or (when
    `legacy_secret` is given) the body-only `sha256=<hex>` signed with it; else 401."""
    if not header:
        raise Unauthorized("missing X-Careline-Signature header")
    value = header.strip()
    if value.lower().startswith("sha256="):
        if legacy_secret is None:
            raise Unauthorized("X-Careline-Signature must be t=<unix>,v1=<hex>")
        expected = hmac_sha256_header(legacy_secret, body)
        if not hmac.compare_digest(expected.encode(), value.lower().encode()):
            raise Unauthorized("bad X-Careline-Signature")
        global _legacy_warned
        if not _legacy_warned:  # once per process: a warning per request floods the log
            _legacy_warned = True
            log.warning(
                "deprecated body-only X-Careline-Signature accepted (replayable); sign "
                "t=<unix>,v1=<hex> and set CARELINE_SIGNATURE_LEGACY=false"
            )
        return
    fields: dict[str, list[str]] = {}
    for item in value.split(","):
        k, sep, v = item.strip().partition("=")
        if sep:
            fields.setdefault(k.strip(), []).append(v.strip().lower())
    stamps = fields.get("t", [])
    if len(stamps) != 1 or not stamps[0].isdigit() or len(stamps[0]) > 12:
        raise Unauthorized("bad X-Careline-Signature: no timestamp")
    t = int(stamps[0])
    if abs(now - t) > tolerance_s:
        raise Unauthorized("X-Careline-Signature timestamp outside the replay window")
    want = timestamped_header(secret, body, t=t).rpartition("v1=")[2].encode()
    if not any(
        _V1.match(v) and hmac.compare_digest(want, v.encode()) for v in fields.get("v1", [])
    ):
        raise Unauthorized("bad X-Careline-Signature")


def verify_request(
    settings: Any, channel: str, body: bytes, header: str | None, now: float
) -> None:
    """The inbound webhook check with the deployment's keys and window (404 if unset)."""
    key = inbound_key(settings)
    if not key:
        raise NotFound(f"the {channel} webhook is not configured")
    verify_careline_signature(
        key,
        body,
        header,
        now=now,
        tolerance_s=int(getattr(settings, "signature_tolerance_s", DEFAULT_TOLERANCE_S)),
        legacy_secret=legacy_secret(settings),
    )


def verify_token(expected: str, given: str | None, header_name: str) -> None:
    if not given:
        raise Unauthorized(f"missing {header_name} header")
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise Unauthorized(f"bad {header_name}")
