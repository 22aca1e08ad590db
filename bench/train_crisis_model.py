"""Train the learned crisis layer on the TUNING split and write its artefact.

    python bench/train_crisis_model.py      # writes src/router/sign_data/crisis_model.json.gz

A logistic regression over character n-grams (scikit-learn's TF-IDF, ``char_wb`` 2-5, sublinear
tf): it reads spelling, not words, so it carries over to typos and inflections the concept
lists lack. It is trained here, at build time, on the project's own corpus; the service only
reads the exported weights with a few lines of pure Python (``router.learned``), so neither
scikit-learn nor any model hub is needed at run time. The held-out split is never read.

The threshold is chosen by 5-fold cross-validation on the tuning split: the lowest one whose
out-of-fold false alarms on front-desk messages (first_line + idioms) stay at or under 1 %.
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

from router.learned import NGRAMS, CrisisModel, prepare

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "router" / "sign_data" / "crisis_model.json.gz"
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


def main() -> int:
    samples = load_samples("tuning")
    texts = np.array([prepare(s.text) for s in samples])
    y = np.array([s.label == "crisis" for s in samples])
    front = np.array([s.label in ("first_line", "negative") for s in samples])

    prob = np.zeros(len(samples))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(texts, y):
        vec = _vectorizer()
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=4000)
        clf.fit(vec.fit_transform(texts[train]), y[train])
        prob[test] = clf.predict_proba(vec.transform(texts[test]))[:, 1]
    threshold = next(t for t in THRESHOLDS if (prob[front] >= t).mean() <= MAX_FALSE_ALARMS)
    recall = (prob[y] >= threshold).mean()
    alarms = (prob[front] >= threshold).mean()
    print(f"threshold {threshold}: out-of-fold recall {recall:.3f}, front-desk alarms {alarms:.3f}")

    vec = _vectorizer()
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=4000)
    clf.fit(vec.fit_transform(texts), y)
    vocab = vec.vocabulary_
    weights = {g: [float(vec.idf_[i]), float(clf.coef_[0][i])] for g, i in vocab.items()}
    artefact = {
        "ngrams": list(NGRAMS),
        "intercept": float(clf.intercept_[0]),
        "threshold": threshold,
        "features": weights,
        "trained_on": f"tuning split, {len(samples)} messages, {int(y.sum())} crises",
    }
    OUT.write_bytes(gzip.compress(json.dumps(artefact, sort_keys=True).encode(), mtime=0))

    # The pure-Python scorer must agree with scikit-learn on every training message.
    model = CrisisModel.load(OUT)
    ours = np.array([model.probability(s.text) for s in samples])
    theirs = clf.predict_proba(vec.transform(texts))[:, 1]
    worst = float(np.max(np.abs(ours - theirs)))
    print(f"wrote {OUT.name} ({OUT.stat().st_size // 1024} kB); max |pure - sklearn| = {worst:.2e}")
    return 0 if worst < 1e-6 and not math.isnan(worst) else 1


if __name__ == "__main__":
    sys.exit(main())
