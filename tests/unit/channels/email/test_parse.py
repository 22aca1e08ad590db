"""Parsing real-world mail: every corpus file parses or is refused with `EmailRejected`;
chosen files are checked field by field; truncated and garbage bodies never crash."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from channels.email.parse import EmailRejected, ParsedEmail, parse_email

DATA = Path(__file__).parents[4] / "tests" / "data" / "email"
# reply_parser/ holds bodies without headers (for the quote stripper), not whole messages.
CORPUS = sorted(
    p for p in DATA.rglob("*") if p.suffix in (".eml", ".txt") and p.parent.name != "reply_parser"
)


def _parse_or_reject(raw: bytes) -> ParsedEmail | None:
    try:
        return parse_email(raw, own_addresses=frozenset({"ayuda@clinica.example"}))
    except EmailRejected:
        return None


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_file_parses_or_is_rejected(path: Path) -> None:
    raw = path.read_bytes()
    parsed = _parse_or_reject(raw)
    if parsed is not None:
        assert "@" in parsed.from_addr
        assert parsed.from_addr == parsed.from_addr.lower()
        assert parsed.message_id
        assert "<" not in parsed.message_id
        for s in (parsed.text, parsed.text_full, parsed.subject or ""):
            assert "\x00" not in s
            assert not any("\udc80" <= c <= "\udcff" for c in s)
        assert parsed.message_id == parse_email(raw).message_id  # stable, even when derived
    for cut in (1, 17, len(raw) // 3, len(raw) // 2, len(raw) - 7):
        _parse_or_reject(raw[: max(cut, 1)])


def test_garbage_never_raises_anything_else() -> None:
    rng = random.Random(6)
    for _ in range(300):
        size = rng.randint(1, 3000)
        blob = bytes(rng.getrandbits(8) for _ in range(size))
        _parse_or_reject(blob)
        _parse_or_reject(
            b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n" + blob
        )


# (file, sender, subject, text start, attachments, auto)
EXPECTED = [
    ("cpython/msg_01.txt", "bbb@ddd.com", "This is a test message", "Hi,", 0, None),
    ("cpython/msg_07.txt", "barry@digicool.com", "Here is your dingus fish", "Hi there,", 1, None),
    ("cpython/msg_16.txt", "postmaster@ucla.edu", None, None, 0, "bounce"),
    ("cpython/msg_25.txt", "mailer-daemon@zinfandel.lacita.com", None, None, None, "bounce"),
    ("cpython/msg_32.txt", "aperson@example.com", None, None, 0, "auto_reply"),
    ("nodemailer/applequoted.eml", "andris.reinman@gmail.com", "test", "test", 1, None),
    ("nodemailer/nested.eml", "u@example.com", None, "Dear Sir,", 0, None),
    ("nodemailer/delivery-status.eml", "mailer-daemon@amazonses.com", None, None, 0, "bounce"),
    ("careline/es_latin1_qp_reply.eml", "mjose@correo.example", "Re: Cambio de cita médica",
     "Hola,\n\nNecesito cambiar mi cita del martes con la doctora Pérez.", 0, None),
    ("careline/ru_koi8r_base64.eml", "ivan.petrov@pochta.example", "Справка после приёма",
     "Здравствуйте!", 0, None),
    ("careline/ru_cp1251_html_inline_attachment.eml", "olga@pochta.example", "Анализы и фото",
     "Добрый день,", 2, None),
    ("careline/ru_cp1251_8bit_headers_no_message_id.eml", "stepan@pochta.example",
     "Срочно: запись к врачу", "Прошу записать меня к кардиологу", 0, None),
    ("careline/es_utf8_forwarded_rfc822.eml", "ana@correo.example",
     "Fwd: Resultados del análisis", "Les reenvío los resultados", 1, None),
    ("careline/es_auto_reply_out_of_office.eml", "pedro@correo.example", None, None, 0,
     "auto_reply"),
    ("careline/malformed_headers.eml", "real.sender@example.org", None, "Café", 0, None),
    ("careline/truncated_multipart.eml", "cut@example.org", "truncated",
     "The upload was cut here", 1, None),
]  # fmt: skip


@pytest.mark.parametrize(("name", "sender", "subject", "text", "atts", "auto"), EXPECTED)
def test_known_files(
    name: str,
    sender: str,
    subject: str | None,
    text: str | None,
    atts: int | None,
    auto: str | None,
) -> None:
    p = parse_email((DATA / name).read_bytes())
    assert p.from_addr == sender
    if subject is not None:
        assert p.subject == subject
    if text is not None:
        assert p.text.startswith(text)
    if atts is not None:
        assert len(p.attachments) == atts
    assert p.auto == auto


def test_quoted_reply_and_signature_stripped_full_text_kept() -> None:
    p = parse_email((DATA / "careline/es_latin1_qp_reply.eml").read_bytes())
    assert p.text.endswith("Gracias,\nMaría José")
    assert "Enviado desde mi iPhone" not in p.text
    assert "escribió" in p.text_full
    ru = parse_email((DATA / "careline/ru_koi8r_base64.eml").read_bytes())
    assert "Иван Петров" not in ru.text
    assert "пишет" not in ru.text


def test_html_only_inline_image_and_rfc2231_name() -> None:
    p = parse_email((DATA / "careline/ru_cp1251_html_inline_attachment.eml").read_bytes())
    assert p.html_only
    assert "alert" not in p.text_full
    assert "color" not in p.text_full
    img, pdf = p.attachments
    assert img.inline
    assert img.content_id == "photo1@local"
    assert img.mime == "image/png"
    assert pdf.name == "анализы.pdf"
    assert pdf.data.startswith(b"%PDF")
    assert "Пришлите" in p.text_full
    assert "Пришлите" not in p.text


def test_threading_ids_and_tokens_in_recipients() -> None:
    p = parse_email((DATA / "careline/es_latin1_qp_reply.eml").read_bytes())
    assert p.in_reply_to == ("careline.7.21.abcdef@clinica.example",)
    assert p.thread_ids == ("careline.7.21.abcdef@clinica.example",)
    assert "ayuda+c7@clinica.example" in p.recipients
    bad = parse_email((DATA / "careline/malformed_headers.eml").read_bytes())
    assert bad.references == ("ref-1@example.org",)
    assert bad.date is None


def test_derived_message_id_is_stable_across_transport_headers() -> None:
    raw = (DATA / "careline/ru_cp1251_8bit_headers_no_message_id.eml").read_bytes()
    a = parse_email(raw)
    b = parse_email(b"Received: from relay.example by mx.example; Wed, 15 May 2024\n" + raw)
    assert a.message_id_derived
    assert a.message_id == b.message_id
    assert a.message_id.endswith("@derived.careline.invalid")


def test_bounce_carries_original_id_and_status() -> None:
    p = parse_email((DATA / "nodemailer/delivery-status.eml").read_bytes())
    assert p.bounce is not None
    assert p.bounce.original_ids == ("xxxxx@email.amazonses.com",)
    assert (p.bounce.status, p.bounce.action) == ("5.1.1", "failed")


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ("Auto-Submitted: auto-generated\n", "auto_reply"),
        ("Auto-Submitted: no\n", None),
        ("Precedence: bulk\n", "auto_reply"),
        ("X-Autoreply: yes\n", "auto_reply"),
        ("X-Careline-Loop: c1\n", "loop"),
        ("X-Failed-Recipients: a@b.example\n", "bounce"),
        ("", None),
    ],
)
def test_machine_mail_signals(headers: str, kind: str | None) -> None:
    raw = f"From: p@correo.example\nSubject: hola\n{headers}\nbody\n".encode()
    assert parse_email(raw).auto == kind


def test_own_address_is_a_loop() -> None:
    raw = b"From: Clinic <AYUDA@clinica.example>\nSubject: x\n\nbody\n"
    assert parse_email(raw, own_addresses=frozenset({"ayuda@clinica.example"})).auto == "loop"
