"""Outbound mail construction, subjects, tokens, SMTP URL parsing and the file store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from channels.email import tokens
from channels.email.compose import build_reply, references_chain, smtp_config
from router.files import AttachmentStore


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Cita", "Re: Cita [#c5]"),
        ("Re: Re: RE: Fwd: Cita", "Re: Cita [#c5]"),
        ("Re[2]: Ответ: Справка [#c5]", "Re: Справка [#c5]"),
        ("AW: Termin [#c9]", "Re: Termin [#c5]"),
        (None, "Re: Your message [#c5]"),
    ],
)
def test_reply_subject(subject: str | None, expected: str) -> None:
    assert tokens.reply_subject(subject, 5) == expected


def test_tokens_from_plus_address_and_subject() -> None:
    assert tokens.plus_address("Clinica <ayuda+x@clinica.example>", 42) == (
        "Clinica <ayuda+c42@clinica.example>"
    )
    assert tokens.conversation_ids(("ayuda+c42@clinica.example", "x@y.example"), "Re: a [#c7]") == [
        42,
        7,
    ]
    assert tokens.conversation_ids(("ayuda+promo@clinica.example",), "no token") == []


@pytest.mark.parametrize(
    ("url", "host", "port", "user", "tls", "starttls"),
    [
        ("smtp://relay.example", "relay.example", 25, None, False, None),
        (
            "smtp://u%40x:p%3Aw@relay.example:587?starttls=require",
            "relay.example",
            587,
            "u@x",
            False,
            True,
        ),
        ("smtps://u:p@relay.example", "relay.example", 465, "u", True, False),
        ("smtp://127.0.0.1:2525?starttls=never", "127.0.0.1", 2525, None, False, False),
    ],
)
def test_smtp_config(
    url: str, host: str, port: int, user: str | None, tls: bool, starttls: bool | None
) -> None:
    cfg = smtp_config(url)
    assert (cfg.hostname, cfg.port, cfg.username, cfg.use_tls, cfg.start_tls) == (
        host, port, user, tls, starttls,
    )  # fmt: skip


def test_smtp_config_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="smtp://"):
        smtp_config("http://relay.example")


def test_references_chain_keeps_root_and_recent() -> None:
    refs = tuple(f"r{i}@x" for i in range(20))
    chain = references_chain(refs, "last@x")
    assert len(chain) == 10
    assert chain[0] == "r0@x"
    assert chain[-1] == "last@x"


def test_build_reply_html_is_escaped() -> None:
    mail = build_reply(
        from_header="Clinica <ayuda@clinica.example>",
        to="ana@correo.example",
        conversation_id=3,
        message_id="ours@clinica.example",
        subject="Re: Cita",
        text="<script>x</script>\n\nLínea dos",
        date=datetime(2024, 6, 4, tzinfo=UTC),
        in_reply_to="theirs@correo.example",
        references=("theirs@correo.example",),
        automatic=False,
    )
    html = mail.get_body(("html",))
    assert html is not None
    content = html.get_content()
    assert "&lt;script&gt;" in content
    assert "<script>" not in content
    assert mail["Message-ID"] == "<ours@clinica.example>"
    assert mail["X-Careline-Loop"] == "c3"


def test_store_is_content_addressed_and_refuses_paths(tmp_path: Path) -> None:
    store = AttachmentStore(tmp_path)
    ref = store.put(b"hello")
    assert ref == store.put(b"hello")
    assert store.get(ref) == b"hello"
    assert AttachmentStore.owns(ref)
    for bad in ("email-store:../../etc/passwd", "file:///etc/passwd", "email-store:" + "0" * 63):
        with pytest.raises(ValueError, match="reference"):
            store.path(bad)
