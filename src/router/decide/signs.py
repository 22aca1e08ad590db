"""Warning signs: crisis and urgent-medical detection by concepts that combine. Pure, no I/O.

The phrase lexicon in the policy recognises sentences its authors thought of. People in crisis
rarely write those sentences: they write "ya le deje a mi hermana quien cuide al gato", "took
like 20 of my sleeping pills an hour ago", "стою на крыше". What such messages share is not a
phrase but a combination of *concepts*: someone taking + a quantity + medication; being at +
a height; a minor's age + an adult + a secret. So the model has two parts:

- **concepts** (``sign_data/<lang>.toml``): words and short phrases per language for each idea
  (``MEDS``, ``TOOK``, ``HEIGHT``, ...). Matching is on normalised tokens (no accents, "ё" = "е")
  by exact form, by Snowball stem, by ``prefix*``, by every inflected form of a Russian word
  (pymorphy3 expands the dictionary lemma's paradigm at load time: "выпить" also matches
  "выпила", "выпьют"), and by one edit for long words (typos: "sucidarme", "overdosed");
- **signs** (``sign_data/signs.toml``, language-independent): a category fires when all of its
  concepts occur within a window of tokens, in any order, unless an exclusion concept (the
  idiom "me muero de risa", a past-tense "last year") is nearby.

Cost is linear in the text: the text routing reads is capped (:data:`MAX_ROUTING_CHARS`),
tokens are cut at :data:`MAX_TOKEN_LEN`, each token makes a bounded number of dictionary
look-ups, and each sign is checked by one sweep over the positions of its concepts.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from itertools import product
from pathlib import Path
from typing import Any

from router.decide.textnorm import normalise, stem

__all__ = [
    "MAX_ROUTING_CHARS",
    "MAX_TOKEN_LEN",
    "SignHit",
    "SignModel",
    "cap_text",
    "default_model",
    "load_model",
    "without",
]

# What routing reads of a message: the opening and the end (a long e-mail states its reason
# up front; a signature or a last line may say the rest). The stored text stays whole.
MAX_ROUTING_CHARS = 6000
_TAIL_CHARS = 2000
# No word in any served language is longer; a 200,000-letter "word" is cut, not indexed.
MAX_TOKEN_LEN = 40
# Prefix patterns ("suicid*") are looked up by a token's prefixes of these lengths only.
MIN_PREFIX, MAX_PREFIX = 3, 16
# One-edit typo tolerance only for long words: short ones collide ("pills"/"bills").
FUZZY_MIN_LEN = 7
_CACHE_SIZE = 65536
MIN_STEM = 4  # shorter stems collide across words and languages

_APOSTROPHES = re.compile(r"['’`´ʼ]")
_TOKEN_RE = re.compile(r"[^\W_]+")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_REPEATS = re.compile(r"(.)\1{2,}")  # "pleeeease" -> "please" (runs of 3+ collapse to one)
_UNITS = frozenset(
    {"mg", "mcg", "ug", "ml", "g", "gr", "kg", "mgs", "мг", "мл", "г", "кг", "iu", "ui"}
    | {"min", "mins", "minutes", "minutos", "минут", "мин", "sec", "seconds", "segundos", "секунд"}
    | {"h", "hr", "hrs", "hour", "hours", "horas", "hora", "час", "часа", "часов", "ч"}
    | {"day", "days", "dias", "дня", "дней", "week", "weeks", "semanas", "недель", "недели"}
    | {"months", "meses", "месяцев", "месяца", "years", "anos", "лет", "года", "kg", "kilos"}
    | {"c", "degrees", "grados", "градусов", "bpm", "am", "pm", "eur", "euros", "usd", "rub"}
    | {"руб", "рублей", "pounds", "dollars", "dolares", "pesos", "percent", "por", "x"}
)
SNOWBALL = {"es": "es", "en": "en", "ru": "ru", "pt": "pt", "it": "it", "fr": "fr", "de": "de"}


def cap_text(text: str) -> str:
    """The part of ``text`` routing reads: all of it up to :data:`MAX_ROUTING_CHARS`, else the
    head and the last :data:`_TAIL_CHARS` characters."""
    if len(text) <= MAX_ROUTING_CHARS:
        return text
    return text[: MAX_ROUTING_CHARS - _TAIL_CHARS] + "\n" + text[-_TAIL_CHARS:]


@dataclass(frozen=True)
class SignHit:
    """One warning sign found: its group (crisis / urgent_medical), category and the cue."""

    group: str
    category: str
    cue: str  # the matched words, normalised, in text order
    # Token positions (first, last) of each matched concept, in :func:`tokenize`'s tokens.
    parts: tuple[tuple[int, int], ...] = ()

    def reason(self) -> str:
        """Human-readable reason stored with the routing decision."""
        return f"warning sign ({self.group}, {self.category}): '{self.cue}'"

    def overlaps(self, other: SignHit) -> bool:
        """True when a word of this hit is inside ``other``'s span (first to last word)."""
        if not other.parts:
            return False
        lo, hi = other.parts[0][0], max(b for _, b in other.parts)
        return any(a <= hi and b >= lo for a, b in self.parts)


# -- tokens and their keys ---------------------------------------------------------------------
#
# Every token becomes a small set of keys; every concept term step is a set of keys; a token
# matches a step when the sets meet. Keys: "=form", "~lang:stem", "^prefix", "?typo" (below),
# "#num" / "#minor" / "#big" for numbers.


# One typo, and only one: a letter missing, a letter added, a letter replaced, or two adjacent
# letters swapped. Plain symmetric deletion also paired words two edits apart ("hearing" and
# "harming" both lose a letter to "haring"; "оставить" and "отравить" to "отавить"), so a
# replaced letter must sit at the same place in both words and a swap must drop the same letter
# one place apart. Keys: "?w" the whole word, "?-w" a word with one letter dropped, "?i:w" a
# letter dropped at place i, "?c<i:w" letter c dropped at place i (for swaps).


def _typo_keys_token(form: str) -> set[str]:
    keys = {"?" + form}
    for i in range(len(form)):
        d = form[:i] + form[i + 1 :]
        keys.add("?-" + d)  # the writer added a letter
        keys.add(f"?{i}:{d}")  # the writer replaced one
        keys.add(f"?{form[i]}<{i}:{d}")  # the writer swapped two
    return keys


def _typo_keys_term(form: str) -> set[str]:
    keys = {"?" + form, "?-" + form}
    for i in range(len(form)):
        d = form[:i] + form[i + 1 :]
        keys.add("?" + d)  # the writer dropped a letter
        keys.add(f"?{i}:{d}")
        # a swap of places i and i+1 drops the same letter c one place apart
        keys.add(f"?{form[i]}<{i + 1}:{d}")
        keys.add(f"?{form[i]}<{i - 1}:{d}")
    return keys


@lru_cache(maxsize=131072)
def _token_keys(token: str, stem_langs: tuple[str, ...]) -> frozenset[str]:
    keys = {"=" + token}
    forms = {token}
    collapsed = _REPEATS.sub(r"\1", token)
    if collapsed != token:
        forms.add(collapsed)
        keys.add("=" + collapsed)
    cyrillic = bool(_CYRILLIC.search(token))
    for form in forms:
        for lang in stem_langs:
            if (lang == "ru") == cyrillic:
                keys.add(f"~{lang}:{stem(form, lang)}")
        for n in range(MIN_PREFIX, min(len(form), MAX_PREFIX) + 1):
            keys.add("^" + form[:n])
        if len(form) >= FUZZY_MIN_LEN:
            keys |= _typo_keys_token(form)
    if token.isdigit():
        keys.add("#num")
        value = int(token[:6])
        if 5 <= value <= 17:
            keys.add("#minor")
        if value >= 8:
            keys.add("#big")
    return frozenset(keys)


def tokenize(text: str) -> list[str]:
    """Normalised tokens of the capped ``text``, each cut at :data:`MAX_TOKEN_LEN`."""
    folded = normalise(_APOSTROPHES.sub("", cap_text(text)))
    return [t[:MAX_TOKEN_LEN] for t in _TOKEN_RE.findall(folded)]


# -- the compiled model ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Term:
    concept: int
    steps: tuple[frozenset[str], ...]  # key sets, one per word of the term
    fuzzy: tuple[frozenset[str], ...]  # "?" keys per step (empty: no typo tolerance)


@dataclass(frozen=True)
class _Sign:
    group: str
    category: str
    needs: tuple[frozenset[int], ...]  # each slot: any of these concepts
    window: int
    unless: frozenset[int]
    ordered: bool  # slots must occur in the order given ("kill" before "my boss")
    # Concepts that cancel anywhere within ``window`` tokens of the match, not only next to it:
    # a context that frames the whole sentence ("me mataron en el último nivel del juego").
    unless_far: frozenset[int] = frozenset()
    # Concepts that cancel anywhere in the text (a symptom anywhere makes a request clinical).
    unless_anywhere: frozenset[int] = frozenset()


class SignError(ValueError):
    """A concept or sign definition that cannot be compiled."""


class _Morph:
    """Russian paradigms from pymorphy3 (its dictionaries ship in a package; no download)."""

    def __init__(self) -> None:
        import pymorphy3  # type: ignore[import-untyped]  # loaded once, when the model is built

        self._analyzer = pymorphy3.MorphAnalyzer()

    def forms(self, word: str) -> set[str]:
        """Every inflected form of every dictionary lemma ``word`` is the normal form of."""
        out: set[str] = set()
        for parse in self._analyzer.parse(word):
            if parse.normal_form.replace("ё", "е") != word or parse.score < 0.01:
                continue
            out.update(normalise(f.word) for f in parse.lexeme)
        return out


class SignModel:
    """Concepts per language and the signs that combine them, compiled for matching."""

    def __init__(
        self,
        concepts: Mapping[str, Mapping[str, Sequence[str]]],
        signs: Sequence[Mapping[str, Any]],
    ) -> None:
        """``concepts``: language -> concept name -> terms; ``signs``: dicts with ``group``,
        ``category``, ``all`` (concept names; ``A|B`` for alternatives), optional ``window``
        (tokens, default 8), ``unless`` (concept names that cancel next to the match),
        ``unless_far`` (concept names that cancel anywhere within the window) and
        ``unless_anywhere`` (concept names that cancel anywhere in the text)."""
        self.languages = tuple(sorted(concepts))
        self._stem_langs = tuple(lang for lang in self.languages if lang in SNOWBALL)
        names = sorted({name for per in concepts.values() for name in per})
        self._ids = {name: i for i, name in enumerate(names)}
        self.concept_names = tuple(names)
        morph = _Morph() if "ru" in concepts else None
        terms: list[_Term] = []
        for lang, per in concepts.items():
            for name, items in per.items():
                for source in items:
                    terms.append(self._compile_term(self._ids[name], source, lang, morph))
        self._terms = tuple(terms)
        # One-word terms (most of them) are a key look-up: key -> concepts, nothing to verify.
        # Phrases are indexed by their first word and verified word by word.
        single: dict[str, set[int]] = {}
        first: dict[str, list[int]] = {}
        self._phrase_steps: dict[int, tuple[frozenset[str], ...]] = {}
        for i, term in enumerate(terms):
            if len(term.steps) == 1:
                for key in term.steps[0] | term.fuzzy[0]:
                    single.setdefault(key, set()).add(term.concept)
                continue
            steps = zip(term.steps, term.fuzzy, strict=True)
            self._phrase_steps[i] = tuple(a | b for a, b in steps)
            for key in self._phrase_steps[i][0]:
                first.setdefault(key, []).append(i)
        self._single = {k: frozenset(v) for k, v in single.items()}
        self._cache: dict[frozenset[str], tuple[frozenset[int], tuple[int, ...]]] = {}
        self._pairs: dict[tuple[frozenset[str], frozenset[str]], tuple[int, ...]] = {}
        self._first = {k: tuple(v) for k, v in first.items()}
        self._signs = tuple(self._compile_sign(s) for s in signs)
        # Signs by the concepts of their first slot: a message only checks the signs whose first
        # slot it holds, not every sign (hundreds of them; a message holds a few dozen concepts).
        by_first: dict[int, list[int]] = {}
        for i, sign in enumerate(self._signs):
            for c in sign.needs[0]:
                by_first.setdefault(c, []).append(i)
        self._by_first = {c: tuple(v) for c, v in by_first.items()}

    # -- compile ---------------------------------------------------------------------------

    def _compile_term(self, concept: int, source: str, lang: str, morph: _Morph | None) -> _Term:
        words = _APOSTROPHES.sub("", source.casefold()).split()
        if not words:
            raise SignError(f"{lang}: empty term in concept {self.concept_names[concept]}")
        steps: list[frozenset[str]] = []
        fuzzy: list[frozenset[str]] = []
        for raw in words:
            word = normalise(raw)
            if word in ("#num", "#minor", "#big"):
                steps.append(frozenset({word}))
                fuzzy.append(frozenset())
            elif word.endswith("*"):
                prefix = word[:-1]
                if not MIN_PREFIX <= len(prefix) <= MAX_PREFIX:
                    raise SignError(
                        f"{lang}: prefix {source!r} must have {MIN_PREFIX}-{MAX_PREFIX} letters"
                    )
                steps.append(frozenset({"^" + prefix}))
                fuzzy.append(frozenset())
            elif word.startswith("="):
                # "=word": this exact form only (no stem, no typo), for short or ambiguous words.
                steps.append(frozenset({word}))
                fuzzy.append(frozenset())
            else:
                forms = {word}
                if lang == "ru" and morph is not None and _CYRILLIC.search(word):
                    forms |= morph.forms(word)
                elif lang in ("es", "en", "pt", "it", "fr") and not word.isdigit():
                    forms |= {word + "s", word + "es"}  # plurals, where stems are not used
                keys = {"=" + f for f in forms}
                # Stems only for a single word without a dictionary paradigm, and only when the
                # stem keeps most of the word: the Russian stem of "убиться" is "уб" ("убил весь
                # вечер"), the Spanish stem of "herir" is "her" (English "her"). A phrase
                # matches its exact forms: "me corto" must not match "se me corta la llamada".
                if lang in SNOWBALL and len(words) == 1 and (lang != "ru" or len(forms) == 1):
                    accented = raw.casefold().replace("ё", "е")
                    # Spanish stems differ with and without accents: both sides carry both.
                    for form in {stem(word, lang), normalise(stem(accented, lang))}:
                        if len(form) >= max(MIN_STEM, len(word) - 3):
                            keys.add(f"~{lang}:{form}")
                steps.append(frozenset(keys))
                fuzzy.append(
                    frozenset(
                        k for f in forms if len(f) >= FUZZY_MIN_LEN for k in _typo_keys_term(f)
                    )
                )
        return _Term(concept, tuple(steps), tuple(fuzzy))

    def _compile_sign(self, spec: Mapping[str, Any]) -> _Sign:
        def ids(names: str) -> frozenset[int]:
            out = set()
            for name in names.split("|"):
                if name not in self._ids:
                    raise SignError(f"sign {spec.get('category')!r}: unknown concept {name!r}")
                out.add(self._ids[name])
            return frozenset(out)

        needs = tuple(ids(n) for n in spec["all"])
        unless = frozenset().union(*(ids(n) for n in spec.get("unless", [])))
        unless_far = frozenset().union(*(ids(n) for n in spec.get("unless_far", [])))
        anywhere = frozenset().union(*(ids(n) for n in spec.get("unless_anywhere", [])))
        return _Sign(
            group=str(spec["group"]),
            category=str(spec["category"]),
            needs=needs,
            window=int(spec.get("window", 8)),
            unless=unless,
            unless_far=unless_far,
            unless_anywhere=anywhere,
            ordered=bool(spec.get("ordered", False)),
        )

    # -- match -----------------------------------------------------------------------------

    def concepts_in(self, tokens: Sequence[str]) -> dict[int, list[tuple[int, int]]]:
        """Concept id -> (start, end) token spans where one of its terms occurs."""
        keys = [_token_keys(t, self._stem_langs) for t in tokens]
        for i in range(len(tokens) - 1):
            # "50 mg", "30 min", "2 hours": a strength or a time, not a number of tablets.
            if tokens[i + 1] in _UNITS and "#big" in keys[i]:
                keys[i] = keys[i] - {"#big"}
        found: dict[int, list[tuple[int, int]]] = {}
        phrases = self._phrase_steps
        n = len(keys)
        for i, token_keys in enumerate(keys):
            concepts, candidates = self._look_up(token_keys)
            for c in concepts:
                found.setdefault(c, []).append((i, i))
            if not candidates or i + 1 == n:
                continue  # every phrase has two words at least
            for t in self._second(token_keys, keys[i + 1], candidates):
                steps = phrases[t]
                end = i + len(steps)
                if end > n:
                    continue
                j = 2
                while j < len(steps) and not keys[i + j].isdisjoint(steps[j]):
                    j += 1
                if j == len(steps):
                    spans = found.setdefault(self._terms[t].concept, [])
                    if (i, end - 1) not in spans:
                        spans.append((i, end - 1))
        return found

    def _second(
        self, first: frozenset[str], second: frozenset[str], candidates: tuple[int, ...]
    ) -> tuple[int, ...]:
        """The phrases starting with ``first`` whose second word is ``second`` (cached by word
        pair: "no me", "my phone" start hundreds of phrases and recur in most messages)."""
        pair = (first, second)
        cached = self._pairs.get(pair)
        if cached is None:
            steps = self._phrase_steps
            cached = tuple(t for t in candidates if not second.isdisjoint(steps[t][1]))
            if len(self._pairs) >= _CACHE_SIZE:
                self._pairs.clear()  # bounded, like the token cache
            self._pairs[pair] = cached
        return cached

    def _look_up(self, token_keys: frozenset[str]) -> tuple[frozenset[int], tuple[int, ...]]:
        """Concepts a token is, and phrases it may start (cached: words repeat a lot)."""
        cached = self._cache.get(token_keys)
        if cached is not None:
            return cached
        concepts: set[int] = set()
        candidates: set[int] = set()
        for key in token_keys:
            hit = self._single.get(key)
            if hit is not None:
                concepts |= hit
            more = self._first.get(key)
            if more is not None:
                candidates.update(more)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()  # bounded: a flood of random words cannot grow it
        entry = self._cache[token_keys] = (frozenset(concepts), tuple(sorted(candidates)))
        return entry

    def find(self, text: str) -> list[SignHit]:
        """Every sign category present in ``text`` (each category once, first cue kept)."""
        tokens = tokenize(text)
        if not tokens:
            return []
        found = self.concepts_in(tokens)
        present = found.keys()
        hits: list[SignHit] = []
        seen: set[tuple[str, str]] = set()
        candidates: set[int] = set()
        for c in present:
            candidates.update(self._by_first.get(c, ()))
        for i in sorted(candidates):  # in the order of signs.toml: the first cue is kept
            sign = self._signs[i]
            if (sign.group, sign.category) in seen:
                continue
            if any(present.isdisjoint(slot) for slot in sign.needs):
                continue  # a concept it needs is absent: most signs stop here
            if not present.isdisjoint(sign.unless_anywhere):
                continue
            span = _covering_span(sign, found)
            if span is None:
                continue
            seen.add((sign.group, sign.category))
            start, end, parts = span
            cue = " … ".join(" ".join(tokens[a : b + 1]) for a, b in _disjoint(parts))
            hits.append(SignHit(sign.group, sign.category, cue, tuple(parts)))
        return hits


def without(text: str, hits: Sequence[SignHit]) -> str:
    """The tokens of ``text`` outside every hit's span (first to last word), space-joined: what
    is left of a message once its idioms are taken out ("me muero de vergüenza" and all)."""
    tokens = tokenize(text)
    drop = bytearray(len(tokens))
    for hit in hits:
        if hit.parts:
            lo, hi = hit.parts[0][0], max(b for _, b in hit.parts)
            drop[lo : hi + 1] = b"\x01" * (min(hi, len(tokens) - 1) - lo + 1)
    return " ".join(t for t, d in zip(tokens, drop, strict=True) if not d)


def _covering_span(
    sign: _Sign, found: Mapping[int, list[tuple[int, int]]]
) -> tuple[int, int, list[tuple[int, int]]] | None:
    """The first window holding one span of each needed slot and no ``unless`` concept."""
    slots: list[list[tuple[int, int]]] = []
    for need in sign.needs:
        spans = sorted(s for c in need for s in found.get(c, ()))
        if not spans:
            return None
        slots.append(spans)
    blockers = sorted(s for c in sign.unless for s in found.get(c, ()))
    far = sorted(s for c in sign.unless_far for s in found.get(c, ()))
    # Anchor on each span of the rarest slot; the others must fall within the window around it.
    # For each other slot the few nearest candidates are combined (at most 3 per slot), which
    # finds the tight window that a greedy nearest choice misses ("not … pray … dont wake").
    anchor_i = min(range(len(slots)), key=lambda k: len(slots[k]))
    for anchor in slots[anchor_i]:
        lo, hi = anchor[0] - sign.window, anchor[1] + sign.window
        options: list[list[tuple[int, int]]] = []
        for k, spans in enumerate(slots):
            if k == anchor_i:
                options.append([anchor])
                continue
            near = [s for s in spans if s[0] >= lo and s[1] <= hi]
            near.sort(key=lambda s: abs(s[0] - anchor[0]))
            options.append(near[:3])
        for chosen in product(*options):
            # Each slot needs its own words: "ronchas" is an allergy word and a hives word,
            # but one word is not two signs.
            if any(
                not (a[1] < b[0] or a[0] > b[1])
                for i, a in enumerate(chosen)
                for b in chosen[i + 1 :]
            ):
                continue
            if sign.ordered and any(a[0] > b[0] for a, b in zip(chosen, chosen[1:], strict=False)):
                continue
            start = min(s[0] for s in chosen)
            end = max(s[1] for s in chosen)
            if end - start + 1 > sign.window + 1:
                continue
            if any(b[1] >= start - 3 and b[0] <= end + 3 for b in blockers):
                continue
            w = sign.window
            if any(b[1] >= start - w and b[0] <= end + w for b in far):
                continue
            return start, end, sorted(set(chosen))
    return None


def _disjoint(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + 1:  # adjacent words read as one phrase
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out


def load_model(
    directory: Path | None = None, extra: Mapping[str, Mapping[str, Sequence[str]]] | None = None
) -> SignModel:
    """The model from ``directory`` (default: the packaged ``decide/sign_data``): ``signs.toml``
    and one ``<lang>.toml`` of concepts per language; ``extra`` adds terms (language ->
    concept -> terms), which is how a policy adds words or a whole language."""
    if directory is None:
        base = resources.files("router.decide") / "sign_data"
        files = {
            p.name: p.read_text(encoding="utf-8")
            for p in base.iterdir()
            if p.name.endswith(".toml")
        }
    else:
        files = {p.name: p.read_text(encoding="utf-8") for p in directory.glob("*.toml")}
    signs = tomllib.loads(files.pop("signs.toml"))["sign"]
    concepts: dict[str, dict[str, list[str]]] = {}
    for name, body in sorted(files.items()):
        if name.endswith(".toml"):
            concepts[name.removesuffix(".toml")] = {
                k: list(v) for k, v in tomllib.loads(body).items()
            }
    for lang, per in (extra or {}).items():
        target = concepts.setdefault(lang, {})
        for concept, items in per.items():
            target.setdefault(concept, []).extend(items)
    return SignModel(concepts, signs)


@lru_cache(maxsize=1)
def default_model() -> SignModel:
    """The packaged model, built once (about a second: pymorphy3 and the paradigms)."""
    return load_model()
