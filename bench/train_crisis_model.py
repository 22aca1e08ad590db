"""Train the learned layers on the TUNING split and write their artefacts.

    python bench/train_crisis_model.py

writes src/router/decide/sign_data/{crisis,clinical}_model.json.gz.

Two binary models of the same kind: ``crisis`` (crisis vs everything else) and ``clinical``
(anything for a clinician: crisis, urgent medical, clinical; vs the front desk and idioms).

A logistic regression over character n-grams (scikit-learn's TF-IDF, ``char_wb`` 2-5, sublinear
tf): it reads spelling, not words, so it carries over to typos and inflections the concept
lists lack. It is trained here, at build time, on the project's own corpus; the service only
reads the exported weights with a few lines of pure Python (``router.decide.learned``), so neither
scikit-learn nor any model hub is needed at run time. The held-out split is never read.

Thresholds are chosen by 5-fold cross-validation on the tuning split: for ``crisis`` the lowest
whose out-of-fold false alarms on front-desk messages (first_line + idioms) stay at or under 1 %;
for ``clinical`` the one with the best out-of-fold F1 for "needs a clinician".
"""

from __future__ import annotations

import gzip
import json
import math
import sys
from pathlib import Path

import numpy as np
from routing_eval import load_samples
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from router.decide.learned import NGRAMS, CrisisModel, prepare

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "src" / "router" / "decide" / "sign_data"
MAX_FEATURES = 20_000
C = 4.0
MAX_FALSE_ALARMS = 0.01
THRESHOLDS = [round(0.5 + 0.05 * i, 2) for i in range(9)]


def _vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=NGRAMS,
        min_df=2,
        sublinear_tf=True,
        lowercase=False,  # prepare() already normalised
        max_features=MAX_FEATURES,
    )


def train(name: str, positive: set[str]) -> float:
    """Fit, choose the threshold out of fold, export, and check the pure scorer; returns the
    worst disagreement between the pure-Python scorer and scikit-learn."""
    samples = load_samples("tuning")
    texts = np.array([prepare(s.text) for s in samples])
    y = np.array([s.label in positive for s in samples])
    front = np.array([s.label in ("first_line", "negative") for s in samples])

    prob = np.zeros(len(samples))
    for train_i, test_i in StratifiedKFold(5, shuffle=True, random_state=0).split(texts, y):
        vec = _vectorizer()
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=4000)
        clf.fit(vec.fit_transform(texts[train_i]), y[train_i])
        prob[test_i] = clf.predict_proba(vec.transform(texts[test_i]))[:, 1]
    if name == "crisis":
        threshold = next(t for t in THRESHOLDS if (prob[front] >= t).mean() <= MAX_FALSE_ALARMS)
    else:

        def f1(t: float) -> float:
            hit = prob >= t
            tp = float((hit & y).sum())
            return 2 * tp / (hit.sum() + y.sum()) if tp else 0.0

        threshold = max((round(0.3 + 0.05 * i, 2) for i in range(13)), key=f1)
    recall = (prob[y] >= threshold).mean()
    alarms = (prob[front] >= threshold).mean()
    print(
        f"{name}: threshold {threshold}, out-of-fold recall {recall:.3f}, front-desk {alarms:.3f}"
    )

    vec = _vectorizer()
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=4000)
    clf.fit(vec.fit_transform(texts), y)
    weights = {g: [float(vec.idf_[i]), float(clf.coef_[0][i])] for g, i in vec.vocabulary_.items()}
    artefact = {
        "ngrams": list(NGRAMS),
        "intercept": float(clf.intercept_[0]),
        "threshold": threshold,
        "features": weights,
        "trained_on": f"tuning split, {len(samples)} messages, {int(y.sum())} positive",
    }
    out = DATA / f"{name}_model.json.gz"
    out.write_bytes(gzip.compress(json.dumps(artefact, sort_keys=True).encode(), mtime=0))

    model = CrisisModel.load(out)
    ours = np.array([model.probability(s.text) for s in samples])
    theirs = clf.predict_proba(vec.transform(texts))[:, 1]
    worst = float(np.max(np.abs(ours - theirs)))
    print(f"wrote {out.name} ({out.stat().st_size // 1024} kB); max |pure - sklearn| = {worst:.2e}")
    return worst


def main() -> int:
    worst = max(
        train("crisis", {"crisis"}),
        train("clinical", {"crisis", "urgent_medical", "clinical"}),
    )
    return 0 if worst < 1e-6 and not math.isnan(worst) else 1


if __name__ == "__main__":
    sys.exit(main())
