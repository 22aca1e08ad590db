"""Is the `From:` of a mail authentic? The receiving provider's verdict, not ours.

We do no DNS: the provider's MTA checked SPF, DKIM and DMARC and wrote the results in an
`Authentication-Results` header (RFC 8601). Anyone can write such a header into a mail, so
only the topmost one whose authserv-id is in `EMAIL_AUTHSERV_IDS` counts (the provider adds
its own on top and, per RFC 8601 §5, removes forged ones claiming its id).

The sender is authenticated when that header says `dmarc=pass` for the From domain, or
`dkim=pass` with a signing domain (`header.d`/`header.i`) aligned with it, or `spf=pass` with
an aligned `smtp.mailfrom`. Aligned means the same domain or a parent of it: relaxed DMARC
alignment without a public-suffix list, so a subdomain (`evil.github.io`) never vouches for a
parent someone else owns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_TOKEN = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*=\s*([A-Za-z0-9_.-]+)")
_PROP = re.compile(r"([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\s*=\s*(\"[^\"]*\"|[^\s;]+)")


@dataclass(frozen=True)
class Verdict:
    authenticated: bool
    method: str | None = None  # "dmarc" | "dkim" | "spf" | None
    authserv_id: str | None = None


def _strip_comments(value: str) -> str:
    out: list[str] = []
    depth = 0
    quoted = False
    for ch in value:
        if ch == '"' and depth == 0:
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
            continue
        elif not quoted and ch == ")" and depth:
            depth -= 1
            continue
        if depth == 0:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class Result:
    method: str
    result: str
    props: dict[str, str]


def parse(value: str) -> tuple[str, list[Result]]:
    """(authserv-id, results) of one header value; ("", []) when malformed."""
    parts = _strip_comments(value).split(";")
    head = parts[0].split()
    if not head:
        return "", []
    results: list[Result] = []
    for part in parts[1:]:
        m = _TOKEN.match(part)
        if m is None:
            continue
        props = {k.lower(): v.strip('"').lower() for k, v in _PROP.findall(part[m.end() :])}
        results.append(Result(m[1].lower(), m[2].lower(), props))
    return head[0].lower().rstrip("."), results


def aligned(domain: str, from_domain: str) -> bool:
    d = domain.strip().lower().strip(".")
    f = from_domain.strip().lower().strip(".")
    if not d or not f:
        return False
    return d == f or ("." in d and f.endswith("." + d))


def _domain(value: str) -> str:
    return value.rpartition("@")[2]


def verdict(headers: Iterable[str], *, trusted: Iterable[str], from_addr: str) -> Verdict:
    ids = {t.strip().lower().rstrip(".") for t in trusted if t.strip()}
    from_domain = _domain(from_addr)
    for value in headers:
        serv, results = parse(value)
        if serv not in ids:
            continue
        # The topmost trusted header is the provider's own; later ones may be copies
        # that travelled with the mail.
        for r in results:
            if r.result != "pass":
                continue
            if r.method == "dmarc" and r.props.get("header.from", from_domain) == from_domain:
                return Verdict(True, "dmarc", serv)
        for r in results:
            if r.result != "pass":
                continue
            signer = r.props.get("header.d") or _domain(r.props.get("header.i", ""))
            if r.method == "dkim" and aligned(signer, from_domain):
                return Verdict(True, "dkim", serv)
            mailfrom = _domain(r.props.get("smtp.mailfrom", ""))
            if r.method == "spf" and aligned(mailfrom, from_domain):
                return Verdict(True, "spf", serv)
        return Verdict(False, None, serv)
    return Verdict(False)


UNVERIFIED = "unverified:"


def sender_authenticated(settings: object, auth_results: Iterable[str], from_addr: str) -> Verdict:
    """The deployment's verdict: `EMAIL_REQUIRE_AUTHENTICATION=false` (a provider that adds no
    Authentication-Results) trusts From: alone, as before."""
    if not getattr(settings, "email_require_authentication", True):
        return Verdict(True, "from")
    trusted = getattr(settings, "email_authserv_ids", None) or ()
    return verdict(auth_results, trusted=trusted, from_addr=from_addr)
