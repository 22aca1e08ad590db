"""Normalisation, stemming and phrase patterns (es, ru, en)."""

from __future__ import annotations

import pytest

from router.decide.textnorm import (
    PatternError,
    PreparedText,
    compile_matcher,
    compile_phrase,
    normalise,
    tokenize,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Medicación", "medicacion"),
        ("ÑANDÚ", "nandu"),
        ("Ёлка", "елка"),  # ё → е
        ("Йогурт и чай", "йогурт и чай"),  # й is a letter of its own, not и + breve
        ("can’t", "cant"),  # apostrophes dropped, curly or straight
        ("Straße", "strasse"),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_tokenize_splits_on_punctuation() -> None:
    assert tokenize("¿Qué tal?¡Bien, gracias!") == ["que", "tal", "bien", "gracias"]


@pytest.mark.parametrize(
    ("pattern", "lang", "text", "matches"),
    [
        # inflections and missing accents
        ("medicación", "es", "¿puedo tomar la medicación?", True),
        ("medicación", "es", "la medicacion me sienta mal", True),
        ("medicación", "es", "cambiaron mis medicaciones", True),
        ("medicacion", "es", "la medicación", True),
        ("лекарство", "ru", "выпила лекарства утром", True),
        ("лекарство", "ru", "нет лекарств дома", True),
        ("лекарство", "ru", "лекарство закончилось", True),
        ("medication", "en", "new medications", True),
        ("medication", "en", "my medication", True),
        ("medication", "en", "meditation helps", False),
        # phrases are contiguous unless "..." allows a gap of at most 3 words
        ("chest pain", "en", "pain in my chest", False),
        ("chest pain", "en", "sharp chest pains", True),
        ("не хоч* ... жить", "ru", "не хочу больше жить", True),
        ("не хоч* ... жить", "ru", "не хочется жить", True),
        ("не хоч* ... жить", "ru", "не хочу идти к врачу и вообще жить", False),  # gap of 5
        ("no quiero ... vivir", "es", "no quiero seguir viviendo", True),
        # prefix matching is on normalised, unstemmed tokens
        ("suicid*", "en", "I feel suicidal", True),
        ("suicid*", "es", "pensé en el suicidio", True),
        ("убиться*", "ru", "убил весь вечер", False),
        # apostrophes: the same on both sides
        ("dont want to live", "en", "I don’t want to live", True),
        ("dont want to live", "en", "i dont want to live", True),
    ],
)
def test_phrase_patterns(pattern: str, lang: str, text: str, matches: bool) -> None:
    compiled = compile_phrase(pattern, lang)
    assert compiled.search(PreparedText(text).tokens(lang)) is matches


@pytest.mark.parametrize("bad", ["", "...", "... word", "word ...", "a ... ... b", "уб", "x*"])
def test_bad_patterns_rejected(bad: str) -> None:
    with pytest.raises(PatternError):
        compile_phrase(bad, "ru")


def test_matcher_reports_language_and_source() -> None:
    matcher = compile_matcher(
        {"es": ["fiebre"], "en": ["fever"]}, {"ru": [r"температура\D{0,5}39"]}
    )
    hit = matcher.find(PreparedText("tengo FIEBRE"))
    assert hit is not None
    assert (hit.language, hit.kind, hit.source) == ("es", "phrase", "fiebre")
    rx = matcher.find(PreparedText("Температура 39,5"))
    assert rx is not None
    assert (rx.language, rx.kind) == ("ru", "regex")
    assert matcher.find(PreparedText("all good")) is None


def test_regex_is_matched_on_normalised_text() -> None:
    # A regex written with accents matches text typed without them, and the reverse.
    matcher = compile_matcher({}, {"es": ["medicación"]})
    assert matcher.find(PreparedText("MEDICACION")) is not None
