"""How well can any learner rank a learning-benchmark world on mmcurate's alignment features?

The loop and the greedy reference both learn on ``RankContext(...).features``. This script asks
what those features allow at best, with labels no queue chose: for each world and seed it prints
the AUROC of the zero-label prior, of a logistic model fitted on 1,000 *randomly drawn* labels
(scored on the other pairs), and 5-fold cross-validated AUROCs over every pair of a logistic model,
a logistic model on squared and pairwise products of the features, and gradient boosting.
It also prints the recall the benchmark measures (the share of the noisy pairs outside its seeded
10% holdout that ``--budget`` labels reach) for a reviewer who took the cross-validated logistic
model's ranking from the top: a model that saw the truth of the other four folds, about 4,000
labels no queue chose. It is not a strict bound (a loop refits as it goes), but it is what these
features allow a ranking to find. When even these stay below a target's reach, a miss of the loop
is the features', not the learner's (README, *The learning benchmark*, "Recall ≥ 0.80").
scikit-learn is a dev dependency.

Usage::

    python scripts/feature_ceiling.py [--worlds clip_hard,clip_gap] [--kinds same-category]
                                      [--seeds 0,1,5] [--budget 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mmcurate.rank import RankContext
from mmcurate.signals import auroc
from mmcurate.signals.alignment import prior_calibrator
from mmcurate.simulate.worlds import HARD_CLIP_GAP, clip_gap_world

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from cli_loop import holdout_mask  # noqa: E402

WORLDS: dict[str, dict[str, Any]] = {"clip_gap": {}, "clip_hard": HARD_CLIP_GAP}


def _ceiling(features: np.ndarray, noisy: np.ndarray, seed: int, budget: int) -> dict[str, float]:
    from sklearn.ensemble import HistGradientBoostingClassifier  # heavy: sklearn
    from sklearn.linear_model import LogisticRegression  # heavy: sklearn
    from sklearn.model_selection import cross_val_predict  # heavy: sklearn
    from sklearn.pipeline import make_pipeline  # heavy: sklearn
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler  # heavy: sklearn

    def logistic():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))

    rng = np.random.default_rng(seed)
    drawn = rng.choice(len(noisy), 1000, replace=False)
    rest = np.setdiff1d(np.arange(len(noisy)), drawn)
    out = {"random_1000": auroc(logistic().fit(features[drawn], noisy[drawn])
                                .predict_proba(features[rest])[:, 1], noisy[rest])}
    models = {"cv_logistic": logistic(),
              "cv_squared": make_pipeline(StandardScaler(), PolynomialFeatures(2), StandardScaler(),
                                          LogisticRegression(C=0.1, max_iter=3000)),
              "cv_boosting": HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05)}
    scores = {name: cross_val_predict(model, features, noisy, cv=5, method="predict_proba")[:, 1]
              for name, model in models.items()}
    out.update({name: auroc(score, noisy) for name, score in scores.items()})
    pool = ~holdout_mask(len(noisy), seed)
    out["cv_logistic_recall"] = recall_down(scores["cv_logistic"], noisy, pool, budget)
    return out


def recall_down(score: np.ndarray, noisy: np.ndarray, pool: np.ndarray, budget: int) -> float:
    """The share of the noisy pairs in ``pool`` that ``budget`` labels find, taken down ``score``
    (highest first) among the pool's pairs: the benchmark's recall for a static ranking."""
    rows = np.flatnonzero(pool)
    top = rows[np.argsort(-score[rows], kind="stable")[:budget]]
    return float(noisy[top].sum() / max(noisy[rows].sum(), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", default="clip_hard", help=f"some of {sorted(WORLDS)}")
    parser.add_argument("--kinds", default="same-category,random")
    parser.add_argument("--seeds", default="0,1,5")
    parser.add_argument("--budget", type=int, default=1000, help="labels of the recall column")
    args = parser.parse_args()
    print("world kind seed: prior random_1000 cv_logistic cv_squared cv_boosting (AUROC of noise); "
          f"recall of {args.budget} labels down the cv_logistic ranking")
    for world in args.worlds.split(","):
        for kind in args.kinds.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                w = clip_gap_world(5000, kind=kind, random_state=seed, **WORLDS[world])
                noisy = w.truth["noisy"].to_numpy().astype(bool)
                ctx = RankContext(w.image, w.text, indices_labeled=None, labels=None, k=10, random_state=0)
                prior = auroc(1 - prior_calibrator(ctx.features).predict_proba(ctx.features), noisy)
                res = _ceiling(ctx.features.matrix(), noisy, seed, args.budget)
                print(f"{world} {kind} {seed}: {prior:.3f} " + " ".join(f"{v:.3f}" for v in res.values()),
                      flush=True)


if __name__ == "__main__":
    main()
