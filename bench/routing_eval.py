"""Precision/recall of the routing core on the labelled dataset in tests/data/routing/.

    python bench/routing_eval.py            # markdown table (pasted into the README)
    python bench/routing_eval.py --errors   # plus every misrouted message

Labels: crisis | clinical | first_line | negative. A "negative" is a non-crisis message that
uses dramatic words ("me muero de risa", "this traffic is killing me"): its expected route is
first_line, so it is scored as first_line, and separately counted if flagged as a crisis.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from router.policy import Policy, load_policy
from router.rules import ContactSnapshot, ConversationSnapshot, MessageSnapshot, route

DATA_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "routing"
LANGUAGES = ("es", "ru", "en")
CLASSES = ("crisis", "clinical", "first_line")
LABELS = (*CLASSES, "negative")
# Rules with hours would make results depend on the day the bench runs: pin the clock.
NOW = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Sample:
    """One labelled message."""

    language: str
    text: str
    label: str

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
    negatives: int = 0
    negatives_flagged: int = 0
    errors: list[tuple[Sample, str]] = field(default_factory=list)


def load_samples(data_dir: Path = DATA_DIR, languages: Sequence[str] = LANGUAGES) -> list[Sample]:
    """Read ``<lang>.csv`` files (columns text,label); ValueError on an unknown label."""
    samples: list[Sample] = []
    for lang in languages:
        with (data_dir / f"{lang}.csv").open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                if row["label"] not in LABELS:
                    raise ValueError(f"{lang}.csv: unknown label {row['label']!r}")
                samples.append(Sample(lang, row["text"], row["label"]))
    return samples


def predict(text: str, policy: Policy) -> str:
    """The class the router assigns to a first message: crisis, clinical (tier 2) or first_line."""
    decision = route(
        ConversationSnapshot(channel="app"),
        [MessageSnapshot(text=text)],
        ContactSnapshot(),
        NOW,
        policy,
    )
    if decision.crisis:
        return "crisis"
    return "clinical" if policy.queue(decision.queue).tier == 2 else "first_line"


def evaluate(
    policy: Policy | None = None, samples: Sequence[Sample] | None = None
) -> dict[str, LanguageReport]:
    """Score the router on ``samples`` (default: the whole dataset), per language."""
    policy = policy or load_policy()
    samples = load_samples() if samples is None else samples
    reports: dict[str, LanguageReport] = {}
    for s in samples:
        rep = reports.setdefault(s.language, LanguageReport())
        got = predict(s.text, policy)
        if got == s.expected:
            rep.scores[got].tp += 1
        else:
            rep.scores[got].fp += 1
            rep.scores[s.expected].fn += 1
            rep.errors.append((s, got))
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--errors", action="store_true", help="list misrouted messages")
    parser.add_argument("--policy", help="policy TOML (default: the packaged one)")
    args = parser.parse_args(argv)
    reports = evaluate(load_policy(args.policy))
    print(markdown_table(reports))
    if args.errors:
        print()
        for lang, rep in reports.items():
            for sample, got in rep.errors:
                print(f"- [{lang}] {sample.label} → {got}: {sample.text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
