"""The routing core on the labelled corpus (tests/data/routing/{tuning,heldout}/).

The tuning split is what the detector is tuned on: crisis recall there must be total, and the
other classes keep floors just under today's, so a regression fails here. The held-out split
was written by an evaluator who never saw the detector; it is never tuned on, and this test
only checks its shape and that the router runs on all of it. Its scores are published by
bench/routing_eval.py in the README, labelled as what they are.
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

from router.decide.policy import load_policy

# Per language, in the two splits together: what the issue asks the corpus to hold.
MIN_TOTAL = {"crisis": 150, "urgent_medical": 60, "clinical": 150, "first_line": 200}
CRISIS_PRECISION_FLOOR = 0.9
CLASS_FLOOR = 0.84  # precision and recall of clinical / first_line on the tuning split
MAX_NEGATIVES_FLAGGED = (
    0.2  # share of idioms flagged, per language ("me quiero morir de vergüenza")
)


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return load_samples("tuning")


@pytest.fixture(scope="module")
def reports(samples: list[Sample]) -> dict[str, LanguageReport]:
    return evaluate(load_policy(), samples)


@pytest.mark.parametrize("language", LANGUAGES)
def test_corpus_shape(language: str) -> None:
    both = [s for split in ("tuning", "heldout") for s in load_samples(split, languages=[language])]
    counts = {label: sum(s.label == label for s in both) for label in MIN_TOTAL}
    counts["first_line"] += sum(s.label == "negative" for s in both)
    for label, minimum in MIN_TOTAL.items():
        assert counts[label] >= minimum, (label, counts[label])
    heldout = load_samples("heldout", languages=[language])
    assert len(heldout) >= 200
    tuning_texts = {s.text for s in load_samples("tuning", languages=[language])}
    assert not tuning_texts & {s.text for s in heldout}, "a held-out message is in the tuning split"


@pytest.mark.parametrize("language", LANGUAGES)
def test_crisis_recall_is_total_on_tuning(
    reports: dict[str, LanguageReport], language: str
) -> None:
    rep = reports[language]
    missed = [s.text for s, _ in rep.errors if s.label == "crisis"]
    assert missed == []
    assert rep.scores["crisis"].recall == 1.0


@pytest.mark.parametrize("language", LANGUAGES)
def test_urgent_medical_recall_is_total_on_tuning(
    reports: dict[str, LanguageReport], language: str
) -> None:
    missed = [s.text for s, _ in reports[language].errors if s.label == "urgent_medical"]
    assert missed == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_crisis_precision(reports: dict[str, LanguageReport], language: str) -> None:
    rep = reports[language]
    assert rep.scores["crisis"].precision >= CRISIS_PRECISION_FLOOR
    assert rep.negatives_flagged <= MAX_NEGATIVES_FLAGGED * rep.negatives


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("cls", ["clinical", "first_line"])
def test_class_scores(reports: dict[str, LanguageReport], language: str, cls: str) -> None:
    score = reports[language].scores[cls]
    assert score.precision >= CLASS_FLOOR, reports[language].errors
    assert score.recall >= CLASS_FLOOR, reports[language].errors


def test_heldout_runs_end_to_end() -> None:
    # Scores are not asserted (nobody tunes on this split); every message must route.
    reports = evaluate(load_policy(), load_samples("heldout"))
    assert sum(r.scores["crisis"].support for r in reports.values()) >= 150
