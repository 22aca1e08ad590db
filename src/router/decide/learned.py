"""The learned crisis layer: a linear model over character n-grams, scored in pure Python.

Trained at build time by ``bench/train_crisis_model.py`` (scikit-learn, tuning split only) and
shipped as ``router/decide/sign_data/crisis_model.json.gz``; nothing is downloaded or imported from
scikit-learn at run time. It complements the warning signs: character n-grams see "suicid",
"pastill", "таблет" inside misspelt or inflected words the concept lists have not met. Cost is
linear: at most :data:`MAX_MODEL_CHARS` characters are scored.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from router.decide.textnorm import normalise

__all__ = [
    "MAX_MODEL_CHARS",
    "NGRAMS",
    "CrisisModel",
    "default_clinical_model",
    "default_crisis_model",
    "ngram_counts",
    "prepare",
    "warm_up",
]

NGRAMS = (2, 5)
MAX_MODEL_CHARS = 2000
_SPACES = re.compile(r"\s\s+")
_WORDS = re.compile(r"\S+")


def prepare(text: str) -> str:
    """The text as the model reads it: routing's normalisation, bounded, spaces collapsed."""
    return _SPACES.sub(" ", normalise(text[:MAX_MODEL_CHARS]))


_WORD_GRAMS: dict[str, tuple[str, ...]] = {}


def ngram_counts(text: str) -> Counter[str]:
    """Character n-gram counts of ``text`` as the models read it (the same for both models,
    so routing counts once). Per-word n-grams are cached: words repeat; the cache is bounded."""
    grams: Counter[str] = Counter()
    for word in _WORDS.findall(prepare(text)):
        cached = _WORD_GRAMS.get(word)
        if cached is None:
            if len(_WORD_GRAMS) >= 65536:
                _WORD_GRAMS.clear()  # a flood of new words cannot grow it
            cached = _WORD_GRAMS[word] = tuple(_word_grams(word[:64]))
        grams.update(cached)
    return grams


def _word_grams(word: str) -> list[str]:
    # scikit-learn's "char_wb": n-grams of each whitespace-separated word padded with spaces.
    low, high = NGRAMS
    padded = f" {word} "
    out: list[str] = []
    for n in range(low, high + 1):
        if len(padded) < n:
            break
        out.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return out


@dataclass(frozen=True)
class CrisisModel:
    """Exported TF-IDF (sublinear tf, l2 norm) + logistic-regression weights."""

    features: dict[str, tuple[float, float]]  # n-gram -> (idf, weight)
    intercept: float
    threshold: float

    @classmethod
    def load(cls, path: Path | None = None, name: str = "crisis") -> CrisisModel:
        """The artefact at ``path`` (default: the packaged ``<name>_model.json.gz``)."""
        if path is None:
            packaged = resources.files("router.decide") / "sign_data" / f"{name}_model.json.gz"
            raw = packaged.read_bytes()
        else:
            raw = path.read_bytes()
        data = json.loads(gzip.decompress(raw))
        if tuple(data["ngrams"]) != NGRAMS:
            raise ValueError(f"crisis model n-grams {data['ngrams']} != {NGRAMS}")
        feats = {g: (float(v[0]), float(v[1])) for g, v in data["features"].items()}
        return cls(feats, float(data["intercept"]), float(data["threshold"]))

    def probability(self, text: str | Counter[str]) -> float:
        """Probability the trained model gives ``text``, or its :func:`ngram_counts` (which
        both models can share)."""
        grams = ngram_counts(text) if isinstance(text, str) else text
        values: list[tuple[float, float]] = []
        for gram, count in grams.items():
            known = self.features.get(gram)
            if known is not None:
                idf, weight = known
                values.append(((1.0 + math.log(count)) * idf, weight))
        norm = math.sqrt(sum(v * v for v, _ in values)) or 1.0
        z = self.intercept + sum(v * w for v, w in values) / norm
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


@lru_cache(maxsize=1)
def default_crisis_model() -> CrisisModel:
    """The packaged crisis model (crisis vs anything else), loaded once."""
    return CrisisModel.load()


@lru_cache(maxsize=1)
def default_clinical_model() -> CrisisModel:
    """The packaged clinical model ("needs a clinician" vs the front desk), loaded once."""
    return CrisisModel.load(name="clinical")


def warm_up() -> None:
    """Load both models and the warning-sign model now (start-up), not on a first message."""
    from router.decide.signs import default_model

    default_crisis_model()
    default_clinical_model()
    default_model()
