"""Precision/recall of the routing core on the labelled corpus in tests/data/routing/.

    python bench/routing_eval.py                     # both splits, markdown (pasted in the README)
    python bench/routing_eval.py --split tuning --errors   # plus every misrouted message

Two splits, never mixed:

- ``tuning/``: messages the team (and a corpus writer working for it) wrote; the detector is
  tuned on these, so its score here is a **tuning score**, not an accuracy;
- ``heldout/``: written by an independent evaluator who never saw the detector. Nobody tunes
  on it or reads its errors to change the lexicon; its score is the honest estimate.

Labels: crisis | urgent_medical | clinical | first_line | negative. A "negative" is a harmless
message with dramatic words ("me muero de risa", "this heat is killing me"): its expected route
is first_line, scored as such, and counted separately when flagged as a crisis.

Scoring: a crisis is found when the decision is a crisis; an urgent medical message when the
decision is urgent (urgent medical, or a crisis: both reach a clinician at once with the
emergency number); clinical when it reaches second line; first_line when it stays there.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from router.decide.policy import Policy, load_policy
from router.decide.rules import ContactSnapshot, ConversationSnapshot, MessageSnapshot, route

DATA_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "routing"
SPLITS = ("tuning", "heldout")
LANGUAGES = ("es", "ru", "en")
CLASSES = ("crisis", "urgent_medical", "clinical", "first_line")
LABELS = (*CLASSES, "negative")
# Rules with hours would make results depend on the day the bench runs: pin the clock.
NOW = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Sample:
    """One labelled message."""

    language: str
    text: str
    label: str
    category: str = ""

    @property
    def expected(self) -> str:
        """The class the router should produce (a negative should reach the front desk)."""
        return "first_line" if self.label == "negative" else self.label


@dataclass
class ClassScore:
    """Confusion counts of one class."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def support(self) -> int:
        """How many samples truly belong to the class."""
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        """tp / predicted; 1.0 when nothing was predicted (no false alarm either)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """tp / actual; 1.0 when the class has no samples."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class LanguageReport:
    """Scores and mistakes for one language."""

    scores: dict[str, ClassScore] = field(
        default_factory=lambda: {c: ClassScore() for c in CLASSES}
    )
    # (label, category) -> [found, total], for the per-category recall of crisis / urgent.
    categories: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    negatives: int = 0
    negatives_flagged: int = 0
    errors: list[tuple[Sample, str]] = field(default_factory=list)


def load_samples(
    split: str = "tuning", data_dir: Path = DATA_DIR, languages: Sequence[str] = LANGUAGES
) -> list[Sample]:
    """Every ``<split>/*<lang>.csv`` (columns text,label[,category]); ValueError on a bad label."""
    samples: list[Sample] = []
    for lang in languages:
        for path in sorted((data_dir / split).glob(f"*{lang}.csv")):
            if path.stem not in (lang, f"team_{lang}", f"extra_{lang}") and not re.fullmatch(
                rf"blind\d+_{lang}", path.stem
            ):
                continue
            with path.open(encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh):
                    if row["label"] not in LABELS:
                        raise ValueError(f"{path.name}: unknown label {row['label']!r}")
                    samples.append(Sample(lang, row["text"], row["label"], row.get("category", "")))
    return samples


def predict(text: str, policy: Policy) -> str:
    """The class the router assigns to a first message."""
    decision = route(
        ConversationSnapshot(channel="app"),
        [MessageSnapshot(text=text)],
        ContactSnapshot(),
        NOW,
        policy,
    )
    if decision.crisis:
        return "crisis"
    if decision.urgent_medical:
        return "urgent_medical"
    return "clinical" if policy.queue(decision.queue).tier == 2 else "first_line"


def _correct(expected: str, got: str) -> bool:
    if expected == "urgent_medical":
        return got in ("urgent_medical", "crisis")
    if expected == "clinical":
        return got != "first_line"  # reached a clinician; a crisis flag there is a false alarm
    return got == expected


def evaluate(
    policy: Policy | None = None, samples: Sequence[Sample] | None = None
) -> dict[str, LanguageReport]:
    """Score the router on ``samples`` (default: the tuning split), per language."""
    policy = policy or load_policy()
    samples = load_samples() if samples is None else samples
    reports: dict[str, LanguageReport] = {}
    for s in samples:
        rep = reports.setdefault(s.language, LanguageReport())
        got = predict(s.text, policy)
        ok = _correct(s.expected, got)
        if ok:
            rep.scores[s.expected].tp += 1
        else:
            rep.scores[got].fp += 1
            rep.scores[s.expected].fn += 1
            rep.errors.append((s, got))
        if s.label in ("crisis", "urgent_medical") and s.category:
            cell = rep.categories.setdefault((s.label, s.category), [0, 0])
            cell[0] += ok
            cell[1] += 1
        if s.label == "negative":
            rep.negatives += 1
            rep.negatives_flagged += got == "crisis"
    return reports


def markdown_table(reports: dict[str, LanguageReport]) -> str:
    """Per language x class: support, precision, recall; plus negatives flagged as crisis."""
    lines = [
        "| language | class | n | precision | recall |",
        "|---|---|---:|---:|---:|",
    ]
    for lang, rep in reports.items():
        for cls in CLASSES:
            sc = rep.scores[cls]
            lines.append(
                f"| {lang} | {cls} | {sc.support} | {sc.precision:.2f} | {sc.recall:.2f} |"
            )
        lines.append(
            f"| {lang} | negatives flagged as crisis | {rep.negatives} | | "
            f"{rep.negatives_flagged}/{rep.negatives} |"
        )
    return "\n".join(lines)


def category_table(reports: dict[str, LanguageReport]) -> str:
    """Recall per crisis / urgent-medical category, one column per language."""
    keys = sorted({k for rep in reports.values() for k in rep.categories})
    langs = list(reports)
    lines = [
        "| class | category | " + " | ".join(langs) + " |",
        "|---|---|" + "---:|" * len(langs),
    ]
    for label, cat in keys:
        cells = []
        for lang in langs:
            found, total = reports[lang].categories.get((label, cat), [0, 0])
            cells.append(f"{found}/{total}" if total else "–")
        lines.append(f"| {label} | {cat} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--split", choices=SPLITS, action="append", help="default: both")
    parser.add_argument("--errors", action="store_true", help="list misrouted messages")
    parser.add_argument("--policy", help="policy TOML (default: the packaged one)")
    args = parser.parse_args(argv)
    policy = load_policy(args.policy)
    for split in args.split or SPLITS:
        reports = evaluate(policy, load_samples(split))
        label = "tuning score" if split == "tuning" else "held-out (independent)"
        print(f"### {split}: {label}\n")
        print(markdown_table(reports))
        print()
        print(category_table(reports))
        print()
        if args.errors:
            for lang, rep in reports.items():
                for sample, got in rep.errors:
                    text = sample.text.replace("\n", " ")
                    print(f"- [{lang}] {sample.label}/{sample.category} → {got}: {text}")
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
