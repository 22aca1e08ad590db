"""HTML to text, quoted-reply and signature stripping (public fixtures + our own)."""

from __future__ import annotations

import quopri
from pathlib import Path

import pytest

from channels.email.text import html_to_text, strip_reply

FORWARD = (
    "See below\n\n---------- Forwarded message ---------\nFrom: Lab <l@b.example>\n"
    "Date: x\n\nResults"
)
DATA = Path(__file__).parents[4] / "tests" / "data" / "email" / "reply_parser"


def test_html_to_text_drops_active_content_and_keeps_structure() -> None:
    html = (
        "<html><head><title>t</title><style>.a{}</style></head><body>"
        "<script>steal()</script><p>Hola&nbsp;<b>mundo</b></p><ul><li>uno</li><li>dos</li></ul>"
        '<a href="https://clinica.example/cita">cita</a><br>fin'
        "<blockquote><p>citado</p></blockquote></body></html>"
    )
    assert html_to_text(html) == (
        "Hola mundo\n- uno\n- dos\ncita <https://clinica.example/cita>\nfin\n> citado"
    )


@pytest.mark.parametrize("broken", ["<p>unclosed <b>bold", "<<<>>>", "<!-- x", "&#99999999;", ""])
def test_html_to_text_is_total(broken: str) -> None:
    html_to_text(broken)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("quote_reply_spanish.txt", "This is a reply with Spanish quote"),
        ("email_2_2.txt", "Outlook with a reply directly above line"),
        (
            "greedy_on.txt",
            "On your remote host you can run:\n\n     telnet 127.0.0.1 52698\n\nThis should "
            "connect to TextMate (on your Mac, via the tunnel). If that\nfails, the tunnel is "
            "not working.",
        ),
    ],
)
def test_reply_parser_fixtures(name: str, expected: str) -> None:
    text = quopri.decodestring((DATA / name).read_bytes()).decode("utf-8")
    assert strip_reply(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Gracias\n\n-- \nDra. Pérez\nClínica", "Gracias"),
        ("Спасибо\n\nОтправлено с iPhone", "Спасибо"),
        ("Ok\n\n-----Original Message-----\nFrom: x\nold", "Ok"),
        ("Да\n\n15 мая 2024 г., в 10:00, Клиника <a@b.example> написал(а):\n> Ваш", "Да"),
        ("Hi\n\nOn Mon, 3 Jun 2024 at 10:00, Clinic <a@b.example>\nwrote:\n> old", "Hi"),
        ("> old question\n\nmy answer", "my answer"),
        ("> only a quote", "> only a quote"),  # nothing left: keep everything
        (FORWARD, FORWARD),  # a forward is content, not a quote
    ],
)
def test_strip_reply_cases(text: str, expected: str) -> None:
    assert strip_reply(text) == expected
