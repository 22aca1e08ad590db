"""Whether a resolved conversation is asked for a 1–5 rating, and what a valid score is.

Pure: the caller says what it knows (was a rating request ever queued, is there a score, the
conversation's tags, the policy's `[satisfaction]`). Every channel's `on_resolved` hook asks
through `router.flows.satisfaction.ask`, which calls this.
"""

from __future__ import annotations

from collections.abc import Iterable

MIN_SCORE = 1
MAX_SCORE = 5
# Conversations a person in crisis (or with a medical emergency) had: not asked by default.
CRISIS_TAGS = frozenset({"crisis", "urgent_medical"})

_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "rate": "How would you rate the help you received? (1 = poor, 5 = excellent)",
        "thanks": "Thank you for your rating!",
    },
    "es": {
        "rate": "¿Cómo valorarías la ayuda recibida? (1 = mala, 5 = excelente)",
        "thanks": "¡Gracias por tu valoración!",
    },
    "ru": {
        "rate": "Как вы оцениваете полученную помощь? (1 — плохо, 5 — отлично)",
        "thanks": "Спасибо за оценку!",
    },
}


def should_ask(
    *, asked_before: bool, rated: bool, tags: Iterable[str], ask_after_crisis: bool
) -> bool:
    """Once per conversation (a reopened and resolved again conversation is not asked
    again), never once it has a score, and not after a crisis or urgent medical
    conversation unless the policy says so."""
    if asked_before or rated:
        return False
    return ask_after_crisis or not (CRISIS_TAGS & set(tags))


def valid_score(score: object) -> int | None:
    """The score if it is an integer 1–5 (not a bool, not "4"), else None."""
    if isinstance(score, bool) or not isinstance(score, int):
        return None
    return score if MIN_SCORE <= score <= MAX_SCORE else None


def text(key: str, language: str | None) -> str:
    """The rating question (`rate`) or the thanks (`thanks`) in the person's language."""
    lang = (language or "en").lower().replace("_", "-").split("-")[0]
    return _TEXTS.get(lang, _TEXTS["en"])[key]
