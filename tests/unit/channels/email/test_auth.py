"""Authentication-Results (RFC 8601) → is the From: authentic."""

from __future__ import annotations

from channels.email.auth import aligned, parse, verdict

TRUSTED = ["mx.google.com"]


def test_parse_strips_comments_and_reads_properties() -> None:
    serv, results = parse(
        "mx.google.com; dkim=pass (test mode) header.i=@example.com header.s=s1 "
        'header.b="abc"; spf=pass (google.com: domain of b@example.com) '
        "smtp.mailfrom=b@example.com; dmarc=pass (p=NONE sp=NONE) header.from=example.com"
    )
    assert serv == "mx.google.com"
    assert [(r.method, r.result) for r in results] == [
        ("dkim", "pass"),
        ("spf", "pass"),
        ("dmarc", "pass"),
    ]
    assert results[0].props["header.i"] == "@example.com"
    assert results[2].props["header.from"] == "example.com"


def test_only_a_trusted_authserv_id_counts_and_only_the_topmost() -> None:
    passed = "mx.google.com; dmarc=pass header.from=example.com"
    assert verdict([passed], trusted=TRUSTED, from_addr="a@example.com").authenticated
    forged = "mx.evil.example; dmarc=pass header.from=example.com"
    assert not verdict([forged], trusted=TRUSTED, from_addr="a@example.com").authenticated
    # The provider's own header is on top; a "pass" the sender wrote below does not count.
    top = "mx.google.com; dmarc=fail header.from=example.com"
    assert not verdict([top, passed], trusted=TRUSTED, from_addr="a@example.com").authenticated
    assert not verdict([], trusted=TRUSTED, from_addr="a@example.com").authenticated


def test_dkim_and_spf_count_only_when_aligned_with_from() -> None:
    def ok(result: str, sender: str = "a@mail.example.com") -> bool:
        header = f"mx.google.com; {result}"
        return verdict([header], trusted=TRUSTED, from_addr=sender).authenticated

    assert ok("dkim=pass header.d=example.com")  # a parent domain signs
    assert ok("dkim=pass header.i=@mail.example.com")
    assert not ok("dkim=pass header.d=evil.example")
    assert not ok("dkim=fail header.d=mail.example.com")
    assert ok("spf=pass smtp.mailfrom=bounce@mail.example.com")
    assert not ok("spf=pass smtp.mailfrom=bounce@evil.example")
    assert not ok("dmarc=pass header.from=evil.example")
    # A subdomain never vouches for its parent (evil.github.io is not github.io).
    assert not ok("dkim=pass header.d=evil.github.io", "a@github.io")
    assert not aligned("com", "example.com")
