"""Text normalisation and stem-based phrase matching for routing (es, ru, en). Pure, no I/O.

Customers type fast: no accents ("medicacion"), inflections ("лекарств"), curly apostrophes,
"ё" written as "е". Everything is compared after the same normalisation on both sides, so a
pattern written once in the policy matches all of those forms.

Pattern syntax (one phrase per string, words separated by spaces):

- ``word``   matches a token with the same snowball stem (either the stem of the accented or of
  the accent-stripped form, so "medicación" and "medicacion" match each other);
- ``word*``  matches a token starting with ``word`` (normalised, not stemmed), for roots the
  stemmer cuts badly ("убью"/"убить" → "уб");
- ``...``    skips 0 to 3 arbitrary tokens ("не хоч* ... жить" matches "не хочу больше жить").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Literal

import snowballstemmer  # type: ignore[import-untyped]

# ISO 639-1 code of a language with a snowball stemmer; es, ru, en are the ones the policy ships.
StemLanguage = str
_SNOWBALL_NAMES: dict[str, str] = {
    "es": "spanish",
    "ru": "russian",
    "en": "english",
    "pt": "portuguese",
    "it": "italian",
    "fr": "french",
    "de": "german",
}
STEM_LANGUAGES: tuple[str, ...] = tuple(_SNOWBALL_NAMES)

GAP_TOKEN = "..."
MAX_GAP = 3
MIN_SINGLE_WORD = 3
# No word of a served language is longer. Cutting tokens here keeps prefix sets linear in the
# text: every prefix of a 100,000-letter "word" was once built (gigabytes, seconds).
MAX_TOKEN_LEN = 40
# Apostrophes are deleted rather than split on, so "can't" and "cant" both become "cant".
_APOSTROPHES = re.compile(r"['’`´ʼ]")
_TOKEN_RE = re.compile(r"[^\W_]+")
_PATTERN_TOKEN_RE = re.compile(r"\.\.\.|[^\W_]+\*?")


def normalise(text: str) -> str:
    """Casefold and strip accents; keep Russian "й", map "ё" to "е", drop apostrophes.

    >>> normalise("Medicación ЁЖИК Йогурт can’t")
    'medicacion ежик йогурт cant'
    """
    folded = _APOSTROPHES.sub("", text.casefold()).replace("ё", "е")
    out: list[str] = []
    for ch in folded:
        # NFKD would split "й" into "и" + breve; it is a distinct letter in Russian, keep it.
        if ch == "й" or ch.isascii():
            out.append(ch)
            continue
        out.extend(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    return "".join(out)


def tokenize(text: str) -> list[str]:
    """Normalised word tokens (letters and digits) of ``text``, each cut at MAX_TOKEN_LEN."""
    return [t[:MAX_TOKEN_LEN] for t in _TOKEN_RE.findall(normalise(text))]


@lru_cache(maxsize=len(_SNOWBALL_NAMES))
def _stemmer(language: str) -> snowballstemmer.stemmer:
    return snowballstemmer.stemmer(_SNOWBALL_NAMES[language])


@lru_cache(maxsize=65536)
def stem(word: str, language: StemLanguage) -> str:
    """Snowball stem of one (already normalised) word."""
    return str(_stemmer(language).stemWord(word))


@lru_cache(maxsize=65536)
def stem_forms(raw_word: str, language: StemLanguage) -> frozenset[str]:
    """Stems under which a raw word can match: of its accented and its accent-stripped form.

    The Spanish stemmer knows accented suffixes ("-ación"); a customer's "medicacion" lacks the
    accent, so both sides carry both forms and matching is "any stem in common".
    """
    plain = normalise(raw_word)
    accented = raw_word.casefold().replace("ё", "е")
    forms = {stem(plain, language), normalise(stem(accented, language))}
    return frozenset(forms)


@dataclass(frozen=True)
class TokenizedText:
    """A text prepared once for matching many patterns of one language."""

    language: StemLanguage
    tokens: tuple[str, ...]  # normalised tokens
    stems: tuple[frozenset[str], ...]  # stem forms, aligned with tokens
    all_stems: frozenset[str] = frozenset()  # union of `stems`: a cheap pre-filter
    # stem -> positions where it occurs: a pattern is only tried where its first word is.
    positions: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    _prefixed: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False)

    @cached_property
    def all_prefixes(self) -> frozenset[str]:
        """Every prefix of every token: a prefix pattern can then be rejected by a look-up."""
        return frozenset(t[:n] for t in self.tokens for n in range(1, len(t) + 1))

    def prefixed(self, prefix: str) -> tuple[int, ...]:
        """Positions of the tokens starting with ``prefix`` (cached: patterns share prefixes)."""
        found = self._prefixed.get(prefix)
        if found is None:
            found = tuple(i for i, t in enumerate(self.tokens) if t.startswith(prefix))
            self._prefixed[prefix] = found
        return found


def prepare(text: str, language: StemLanguage) -> TokenizedText:
    """Tokenise and stem ``text`` with the ``language`` stemmer."""
    folded = _APOSTROPHES.sub("", text.casefold())
    raw_tokens = [t[:MAX_TOKEN_LEN] for t in _TOKEN_RE.findall(folded)]
    stems = tuple(stem_forms(t, language) for t in raw_tokens)
    positions: dict[str, list[int]] = {}
    for i, forms in enumerate(stems):
        for form in forms:
            positions.setdefault(form, []).append(i)
    return TokenizedText(
        language=language,
        tokens=tuple(normalise(t) for t in raw_tokens),
        stems=stems,
        all_stems=frozenset(positions),
        positions={k: tuple(v) for k, v in positions.items()},
    )


@dataclass(frozen=True)
class _Step:
    kind: Literal["stem", "prefix", "gap"]
    stems: frozenset[str] = frozenset()
    prefix: str = ""


@dataclass(frozen=True)
class PhrasePattern:
    """A compiled phrase pattern (see module docstring for the syntax)."""

    source: str
    language: StemLanguage
    steps: tuple[_Step, ...]

    def describe(self) -> str:
        """Human form for routing reasons: the stems/prefixes actually compared."""
        parts: list[str] = []
        for s in self.steps:
            if s.kind == "gap":
                parts.append(GAP_TOKEN)
            elif s.kind == "prefix":
                parts.append(s.prefix + "*")
            else:
                parts.append(min(s.stems, key=len))
        return " ".join(parts)

    def search(self, text: TokenizedText) -> bool:
        """True when the pattern occurs anywhere in ``text``."""
        # Hundreds of patterns meet every message: reject with set look-ups first, when a
        # word the pattern needs is nowhere in the text, before trying positions.
        for step in self.steps:
            if step.kind == "stem" and step.stems.isdisjoint(text.all_stems):
                return False
            if step.kind == "prefix" and step.prefix not in text.all_prefixes:
                return False
        first = self.steps[0]  # never a gap (compile_phrase refuses that)
        if first.kind == "prefix":
            starts: Iterable[int] = text.prefixed(first.prefix)
        else:
            starts = sorted({i for s in first.stems for i in text.positions.get(s, ())})
        return any(self._match_at(text, 0, i) for i in starts)

    def _match_at(self, text: TokenizedText, step_i: int, tok_i: int) -> bool:
        if step_i == len(self.steps):
            return True
        step = self.steps[step_i]
        if step.kind == "gap":
            # Backtracking over at most MAX_GAP skipped tokens: texts are short, patterns tiny.
            return any(
                self._match_at(text, step_i + 1, tok_i + skip)
                for skip in range(MAX_GAP + 1)
                if tok_i + skip <= len(text.tokens)
            )
        if tok_i >= len(text.tokens):
            return False
        if step.kind == "prefix":
            ok = text.tokens[tok_i].startswith(step.prefix)
        else:
            ok = not step.stems.isdisjoint(text.stems[tok_i])
        return ok and self._match_at(text, step_i + 1, tok_i + 1)


class PatternError(ValueError):
    """A phrase pattern that cannot be compiled."""


def compile_phrase(source: str, language: StemLanguage) -> PhrasePattern:
    """Compile one phrase pattern; raises PatternError on an empty or gap-only phrase."""
    folded = _APOSTROPHES.sub("", source.casefold())
    raw = _PATTERN_TOKEN_RE.findall(folded)
    steps: list[_Step] = []
    for tok in raw:
        if tok == GAP_TOKEN:
            if not steps or steps[-1].kind == "gap":
                raise PatternError(f"pattern {source!r}: '...' must follow a word")
            steps.append(_Step("gap"))
        elif tok.endswith("*"):
            steps.append(_Step("prefix", prefix=normalise(tok[:-1])))
        else:
            steps.append(_Step("stem", stems=stem_forms(tok, language)))
    if not steps or all(s.kind == "gap" for s in steps):
        raise PatternError(f"pattern {source!r} has no words")
    if steps[-1].kind == "gap":
        raise PatternError(f"pattern {source!r}: '...' must be followed by a word")
    if len(steps) == 1 and len(steps[0].prefix or min(steps[0].stems, key=len)) < MIN_SINGLE_WORD:
        # "убиться" stems to "уб", which also matches "убил весь вечер": too short to be alone.
        raise PatternError(
            f"pattern {source!r} is too short on its own (stem/prefix under "
            f"{MIN_SINGLE_WORD} letters): use 'word*' or a longer phrase"
        )
    return PhrasePattern(source=source, language=language, steps=tuple(steps))


def normalise_regex(source: str) -> str:
    """Make a policy regex comparable with normalised text: strip accents, drop apostrophes.

    Case is left alone (escapes like ``\\S`` must survive); regexes compile with IGNORECASE.
    """
    cleaned = _APOSTROPHES.sub("", source).replace("ё", "е").replace("Ё", "Е")
    out: list[str] = []
    for ch in cleaned:
        if ch in "йЙ" or ch.isascii():
            out.append(ch)
            continue
        out.extend(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    return "".join(out)


class PreparedText:
    """One text, normalised once and tokenised/stemmed lazily per language."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.normalised = normalise(text)
        self._by_language: dict[str, TokenizedText] = {}

    def tokens(self, language: StemLanguage) -> TokenizedText:
        """The text tokenised and stemmed with the ``language`` stemmer (cached)."""
        cached = self._by_language.get(language)
        if cached is None:
            cached = self._by_language[language] = prepare(self.text, language)
        return cached


@dataclass(frozen=True)
class Hit:
    """Why a matcher matched: which language, phrase or regex, and what was compared."""

    language: str
    kind: Literal["phrase", "regex"]
    source: str
    detail: str


@dataclass(frozen=True)
class _Keys:
    keys: frozenset[str]
    phrases: dict[str, list[int]]


@dataclass(frozen=True)
class TextMatcher:
    """Phrases and regexes of several languages; matches if any of them occurs.

    Every language's patterns are tried whatever the detected language: detection is unreliable
    on three-word messages and code-switching is common, and a missed match costs more than a
    cross-language one.
    """

    phrases: tuple[PhrasePattern, ...] = ()
    regexes: tuple[tuple[str, str, re.Pattern[str]], ...] = ()  # (language, source, compiled)

    @property
    def empty(self) -> bool:
        """True when there is nothing to match (the text condition is then vacuous)."""
        return not self.phrases and not self.regexes

    @cached_property
    def _index(self) -> dict[str, tuple[_Keys, _Keys]]:
        """Per language: the stems of each phrase's first word → phrases, and for phrases made
        only of prefixes, the first prefix → phrases. Two set intersections per language then
        find the few phrases worth trying, instead of testing hundreds against each message."""
        stems: dict[str, dict[str, list[int]]] = {}
        prefixes: dict[str, dict[str, list[int]]] = {}
        for i, p in enumerate(self.phrases):
            key = next((step for step in p.steps if step.kind == "stem"), None)
            if key is not None:
                where = stems.setdefault(p.language, {})
                for form in key.stems:
                    where.setdefault(form, []).append(i)
            else:
                prefixes.setdefault(p.language, {}).setdefault(p.steps[0].prefix, []).append(i)
        return {
            lang: (
                _Keys(frozenset(stems.get(lang, {})), stems.get(lang, {})),
                _Keys(frozenset(prefixes.get(lang, {})), prefixes.get(lang, {})),
            )
            for lang in {*stems, *prefixes}
        }

    def find(self, text: PreparedText) -> Hit | None:
        """The first phrase (in policy order) or regex occurring in ``text``, or None."""
        candidates: set[int] = set()
        for language, (by_stem, by_prefix) in self._index.items():
            tokens = text.tokens(language)
            for form in by_stem.keys.intersection(tokens.all_stems):
                candidates.update(by_stem.phrases[form])
            if by_prefix.keys:
                for prefix in by_prefix.keys.intersection(tokens.all_prefixes):
                    candidates.update(by_prefix.phrases[prefix])
        for i in sorted(candidates):
            p = self.phrases[i]
            if p.search(text.tokens(p.language)):
                return Hit(p.language, "phrase", p.source, p.describe())
        for language, source, rx in self.regexes:
            m = rx.search(text.normalised)
            if m is not None:
                return Hit(language, "regex", source, m.group(0))
        return None


def compile_matcher(phrases: dict[str, list[str]], regexes: dict[str, list[str]]) -> TextMatcher:
    """Compile per-language phrase lists and regex lists; PatternError/re.error on bad input."""
    compiled_phrases = tuple(
        compile_phrase(src, lang) for lang, items in phrases.items() for src in items
    )
    compiled_rx = tuple(
        (lang, src, re.compile(normalise_regex(src), re.IGNORECASE))
        for lang, items in regexes.items()
        for src in items
    )
    return TextMatcher(compiled_phrases, compiled_rx)
