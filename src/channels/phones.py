"""Phone numbers to E.164 (the cross-channel phone identity), with `phonenumbers`."""

from __future__ import annotations

import phonenumbers


def e164(raw: str | None, region: str, *, bare_digits_international: bool = False) -> str | None:
    """E.164 or None: a number that does not parse or is not valid never becomes an identity.

    `region` applies to national formats. `bare_digits_international` reads "34612345678" as
    "+34612345678" first (Telegram sends shared contacts that way), then as a national number.
    """
    if not raw:
        return None
    raw = raw.strip()
    candidates = ("+" + raw, raw) if bare_digits_international and raw.isdigit() else (raw,)
    for candidate in candidates:
        try:
            num = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(num):
            return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    return None
