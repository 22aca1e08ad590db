"""Language detection for routing and acknowledgements (lingua, restricted language set)."""

from __future__ import annotations

import re
from functools import lru_cache

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

# A small set keeps lingua fast and accurate on short messages. Neighbours of Spanish are
# included so a Portuguese or Italian message is not confidently labelled "es".
_LANGUAGES: tuple[Language, ...] = (
    Language.SPANISH,
    Language.ENGLISH,
    Language.RUSSIAN,
    Language.PORTUGUESE,
    Language.ITALIAN,
    Language.FRENCH,
    Language.GERMAN,
)
MIN_LETTERS = 3
# The opening of a message says its language; reading more only costs time (lingua is linear
# but slow per character), so detection reads at most this much.
MAX_DETECT_CHARS = 1000
# lingua's confidences on a 3-word message are spread out ("hola": es 0.31, pt 0.21); accept the
# top language when it is either clearly confident or clearly ahead of the runner-up.
MIN_CONFIDENCE = 0.5
MIN_LEAD = 0.1

_LETTER_RE = re.compile(r"[^\W\d_]")
_CYRILLIC_RE = re.compile(r"[\u0400-\u04ff]")
_UKRAINIAN_ONLY_RE = re.compile(r"[іїєґ]", re.IGNORECASE)


@lru_cache(maxsize=1)
def _detector() -> LanguageDetector:
    # Built once, lazily: importing this module stays cheap. Models are preloaded at build so
    # the cost (about a second) is paid once, by warm_up() at startup or the first message.
    return (
        LanguageDetectorBuilder.from_languages(*_LANGUAGES).with_preloaded_language_models().build()
    )


def warm_up() -> None:
    """Build the detector and load its models now (call at startup to keep ingest latency flat)."""
    _detector()


def detect_language(text: str) -> str | None:
    """ISO 639-1 code ("es", "ru", "en", ...) of ``text``, or None when unsure.

    None for empty or very short text (fewer than 3 letters) and for low-confidence results:
    a wrong guess would greet the customer in the wrong language, no guess falls back to English.
    Mostly-Cyrillic text short-circuits to "ru" ("uk" if it has Ukrainian-only letters), since
    Russian is the only Cyrillic language served.
    """
    text = text[:MAX_DETECT_CHARS]
    letters = _LETTER_RE.findall(text)
    if len(letters) < MIN_LETTERS:
        return None
    cyrillic = sum(1 for ch in letters if _CYRILLIC_RE.match(ch))
    if cyrillic * 2 >= len(letters):
        return "uk" if _UKRAINIAN_ONLY_RE.search(text) else "ru"
    values = _detector().compute_language_confidence_values(text)
    if not values:
        return None
    top = values[0]
    runner_up = values[1].value if len(values) > 1 else 0.0
    if top.value < MIN_CONFIDENCE and top.value - runner_up < MIN_LEAD:
        return None
    return top.language.iso_code_639_1.name.lower()
