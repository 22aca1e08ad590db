"""The routing core on the labelled dataset (tests/data/routing/{es,ru,en}.csv).

Crisis recall must be perfect: a missed crisis is the one error this product cannot make.
Precision and the other classes have honest floors just under what the policy reaches today,
so a regression fails here; bench/routing_eval.py prints the full table.
"""

from __future__ import annotations

import pytest
from bench.routing_eval import (
    LANGUAGES,
    LanguageReport,
    Sample,
    evaluate,
    load_samples,
)

from router.policy import load_policy

MIN_PER_LANGUAGE = 60
MIN_CRISIS_PER_LANGUAGE = 15
CRISIS_PRECISION_FLOOR = 0.9
CLASS_FLOOR = 0.9  # precision and recall of clinical / first_line
MAX_NEGATIVES_FLAGGED = 1  # per language; "me quiero morir de vergüenza" is a known false alarm


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return load_samples()


@pytest.fixture(scope="module")
def reports(samples: list[Sample]) -> dict[str, LanguageReport]:
    return evaluate(load_policy(), samples)


@pytest.mark.parametrize("language", LANGUAGES)
def test_dataset_shape(samples: list[Sample], language: str) -> None:
    mine = [s for s in samples if s.language == language]
    labels = {s.label for s in mine}
    assert len(mine) >= MIN_PER_LANGUAGE
    assert sum(s.label == "crisis" for s in mine) >= MIN_CRISIS_PER_LANGUAGE
    assert labels == {"crisis", "clinical", "first_line", "negative"}
    assert len({s.text for s in mine}) == len(mine), "duplicate messages"


@pytest.mark.parametrize("language", LANGUAGES)
def test_crisis_recall_is_total(reports: dict[str, LanguageReport], language: str) -> None:
    rep = reports[language]
    missed = [s.text for s, got in rep.errors if s.label == "crisis"]
    assert missed == []
    assert rep.scores["crisis"].recall == 1.0


@pytest.mark.parametrize("language", LANGUAGES)
def test_crisis_precision(reports: dict[str, LanguageReport], language: str) -> None:
    rep = reports[language]
    assert rep.scores["crisis"].precision >= CRISIS_PRECISION_FLOOR
    assert rep.negatives_flagged <= MAX_NEGATIVES_FLAGGED


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("cls", ["clinical", "first_line"])
def test_class_scores(reports: dict[str, LanguageReport], language: str, cls: str) -> None:
    score = reports[language].scores[cls]
    assert score.precision >= CLASS_FLOOR, reports[language].errors
    assert score.recall >= CLASS_FLOOR, reports[language].errors
