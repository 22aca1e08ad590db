"""The learned crisis layer: the shipped artefact loads, scores in pure Python, and is bounded."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from router.decide.learned import (
    MAX_MODEL_CHARS,
    NGRAMS,
    CrisisModel,
    default_crisis_model,
    prepare,
)


def test_artefact_loads_with_a_threshold_from_cross_validation() -> None:
    model = default_crisis_model()
    assert 0.5 <= model.threshold < 1.0
    assert len(model.features) > 1000


def test_scores_separate_a_crisis_from_a_booking() -> None:
    model = default_crisis_model()
    assert model.probability("ya no quiero seguir viviendo, no aguanto mas") > model.threshold
    assert model.probability("quiero cambiar mi cita del jueves a las 10") < model.threshold


def test_reads_a_bounded_text() -> None:
    assert len(prepare("a " * 100_000)) <= MAX_MODEL_CHARS
    assert 0.0 <= default_crisis_model().probability("x" * 200_000) <= 1.0


def test_a_hand_made_artefact_scores_as_logistic_regression(tmp_path: Path) -> None:
    # One feature " a" with idf 1 and weight 2: tf-idf l2-normalised is 1, so z = 2 + intercept.
    path = tmp_path / "m.json.gz"
    data = {"ngrams": list(NGRAMS), "intercept": -2.0, "threshold": 0.5, "features": {" a": [1, 2]}}
    path.write_bytes(gzip.compress(json.dumps(data).encode()))
    model = CrisisModel.load(path)
    assert model.probability("a") == pytest.approx(0.5)
    assert model.probability("zzz") == pytest.approx(1 / (1 + 2.718281828459045**2))


def test_wrong_ngram_range_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.json.gz"
    data = {"ngrams": [1, 3], "intercept": 0, "threshold": 0.5, "features": {}}
    path.write_bytes(gzip.compress(json.dumps(data).encode()))
    with pytest.raises(ValueError, match="n-grams"):
        CrisisModel.load(path)
