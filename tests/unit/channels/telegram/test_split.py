"""Splitting at Telegram's limit, on paragraph, line, sentence, then word boundaries."""

from __future__ import annotations

import pytest

from channels.telegram.split import TEXT_LIMIT, split_text, utf16_len


def test_short_text_is_one_part() -> None:
    assert split_text("  Hola, ¿qué tal?  ") == ["Hola, ¿qué tal?"]
    assert split_text("   ") == []


def test_exactly_the_limit_is_one_part() -> None:
    text = "a" * TEXT_LIMIT
    assert split_text(text) == [text]


def test_prefers_paragraphs() -> None:
    p1 = ("Primera frase. " * 200).strip()  # ~3000 chars
    p2 = ("Segunda parte del mensaje. " * 100).strip()
    parts = split_text(f"{p1}\n\n{p2}")
    assert parts == [p1, p2]


def test_then_sentences_keeping_closing_quotes() -> None:
    sentence = "Dijo: «Tome la pastilla cada ocho horas.» "
    text = (sentence * 200).strip()
    parts = split_text(text)
    assert len(parts) == 3
    assert all(p.endswith(".»") for p in parts)
    assert " ".join(parts) == text


def test_then_words() -> None:
    text = " ".join(["palabra"] * 1200)  # no punctuation, one line
    parts = split_text(text)
    assert all(utf16_len(p) <= TEXT_LIMIT for p in parts)
    assert all(not p.startswith(" ") and not p.endswith(" ") for p in parts)
    assert " ".join(parts) == text


def test_hard_cut_when_no_boundary() -> None:
    text = "x" * (TEXT_LIMIT * 2 + 10)
    parts = split_text(text)
    assert [len(p) for p in parts] == [TEXT_LIMIT, TEXT_LIMIT, 10]


def test_limit_counts_utf16_units() -> None:
    # Each emoji is two UTF-16 units: 4096 units hold 2048 of them.
    text = "😀" * 3000
    parts = split_text(text)
    assert [len(p) for p in parts] == [2048, 952]
    assert "".join(parts) == text


@pytest.mark.parametrize("limit", [50, 100, 333])
def test_every_part_fits_and_nothing_is_lost(limit: int) -> None:
    text = ("Línea uno. Otra frase aquí!\nY otra línea más larga que las demás?\n\n" * 40).strip()
    parts = split_text(text, limit)
    assert all(0 < utf16_len(p) <= limit for p in parts)
    squash = "".join(text.split())
    assert "".join("".join(parts).split()) == squash
