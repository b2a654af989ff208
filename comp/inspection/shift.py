"""Adversarial validation: can a classifier tell train rows from test rows? (docs/recipe.md 2)

A gradient-boosted classifier (scikit-learn's HistGradientBoostingClassifier) learns to
separate train from test on compact features: the feature columns of a table, or for
images their size, brightness, contrast, colour and an 8x8 grey thumbnail. Its
cross-validated ROC AUC says how different the two sets are: 0.5 means alike (a random
split), 1.0 means every test row can be told apart. Each row's out-of-fold P(test) ranks
the train rows by how much they look like test, and permutation importance on a held-out
fold names the features that differ most. On more than ``SAMPLE_ROWS`` rows the classifier
learns from a seeded sample of them (every row of the smaller set, up to half the sample): its AUC
is as clear, at a fraction of the time (327,000 rows took 20 s of a 2-minute budget), and the
rows outside the sample, seen by no fit, get the first fold's model's P(test).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd

SHIFT_AUC = 0.6  # above this the sets differ more than a random split's noise allows
FOLDS = 5
THUMB = 8
SAMPLE_ROWS = 50_000


@dataclass
class Shift:
    auc: float
    p_test: np.ndarray  # out-of-fold P(test) of every row, train rows first
    differs: list[tuple[str, float]]  # features by AUC lost when shuffled, largest first


def image_features(pixels: np.ndarray, shapes: list[tuple[int, ...]]) -> pd.DataFrame:
    """Per image: its own height and width (before resizing; NaN when undecodable), mean,
    contrast, channel means and an 8x8 grey thumbnail."""
    from comp.inspection.outliers import chunks

    n, colour = len(pixels), pixels.shape[-1] == 3
    brightness, contrast = np.empty(n, np.float32), np.empty(n, np.float32)
    means = np.empty((n, pixels.shape[-1]), np.float32)
    thumbs = np.empty((n, THUMB, THUMB), np.float32)
    for rows, part in chunks(pixels):  # a float copy of the whole set would not fit
        grey = part.mean(axis=-1, dtype=np.float32)
        brightness[rows], contrast[rows] = grey.mean(axis=(1, 2)), grey.std(axis=(1, 2))
        means[rows] = part.mean(axis=(1, 2), dtype=np.float32)
        thumbs[rows] = [cv2.resize(g, (THUMB, THUMB), interpolation=cv2.INTER_AREA) for g in grey]
    columns = {
        "height": [s[0] if s else np.nan for s in shapes],
        "width": [s[1] if s else np.nan for s in shapes],
        "brightness": brightness,
        "contrast": contrast,
    }
    if colour:
        for c, name in enumerate(("red", "green", "blue")):
            columns[f"{name} mean"] = means[:, c]
    for r in range(THUMB):
        for c in range(THUMB):
            columns[f"thumbnail pixel ({r},{c})"] = thumbs[:, r, c]
    return pd.DataFrame(columns)


def adversarial_validation(features: pd.DataFrame, is_test: np.ndarray, seed: int) -> Shift | None:
    """Cross-validated AUC of a train-vs-test classifier on ``features`` (numbers, or pandas
    categories); None when either set is too small to cross-validate."""
    from threadpoolctl import threadpool_limits

    # One OpenMP thread: the fits are small, and beside another busy process (a second
    # pytest worker, a training run) OpenMP's spinning threads made inspect 20x slower.
    with threadpool_limits(limits=1, user_api="openmp"):
        return _adversarial_validation(features, is_test, seed)


def _adversarial_validation(features: pd.DataFrame, is_test: np.ndarray, seed: int) -> Shift | None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    from comp.threads import native_threads

    y = np.asarray(is_test, dtype=int)
    if min(y.sum(), len(y) - y.sum()) < FOLDS:
        return None

    def model():
        return HistGradientBoostingClassifier(max_iter=100, categorical_features="from_dtype",
                                              early_stopping=False, random_state=seed)

    p_test = np.empty(len(y))
    sample = np.arange(len(y))
    if len(y) > SAMPLE_ROWS:
        # every row of the smaller set while it is under half the sample (a few hundred test
        # rows must all be there to be cross-validated), the larger set's rows drawn to fill it:
        # the AUC does not depend on the two sets' proportions
        small = int(y.sum() <= len(y) - y.sum())  # the smaller set's label
        rng = np.random.default_rng(seed)
        kept = np.flatnonzero(y == small)
        if len(kept) > SAMPLE_ROWS // 2:
            kept = rng.choice(kept, SAMPLE_ROWS // 2, replace=False)
        fill = rng.choice(np.flatnonzero(y != small), SAMPLE_ROWS - len(kept), replace=False)
        sample = np.sort(np.concatenate([kept, fill]))
    folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(sample, y[sample]))
    held_out = None
    with native_threads():  # on the cores free now: a shared core stalls an OpenMP team
        for fit_rows, val_rows in folds:
            fit_rows, val_rows = sample[fit_rows], sample[val_rows]
            fitted = model().fit(features.iloc[fit_rows], y[fit_rows])
            p_test[val_rows] = fitted.predict_proba(features.iloc[val_rows])[:, 1]
            held_out = held_out or (fitted, val_rows)
        auc = float(roc_auc_score(y[sample], p_test[sample]))
        fitted, rows = held_out
        unseen = np.setdiff1d(np.arange(len(y)), sample)
        if len(unseen):
            p_test[unseen] = fitted.predict_proba(features.iloc[unseen])[:, 1]
        importance = permutation_importance(fitted, features.iloc[rows], y[rows], scoring="roc_auc",
                                            n_repeats=3, random_state=seed).importances_mean
    order = np.argsort(-importance)
    differs = [(str(features.columns[i]), round(float(importance[i]), 4)) for i in order[:5] if importance[i] > 0.005]
    return Shift(auc, p_test, differs)


MAX_CATEGORIES = 250  # HistGradientBoosting takes at most 255 categories per column


def table_features(train, test) -> pd.DataFrame:
    """Train rows then test rows of two ``TableInputs``: numbers as floats, categories as
    pandas categories over both sets' most frequent values (a value only test has is kept:
    it is exactly what differs)."""
    columns = {}
    for key in train.numeric:
        columns[train.names[key]] = np.concatenate([train.numeric[key], test.numeric[key]]).astype(np.float64)
    for key in train.categorical:
        values = pd.Series(np.concatenate([train.categorical[key], test.categorical[key]]))
        kept = [v for v in values.value_counts().index if v != ""][:MAX_CATEGORIES]
        columns[train.names[key]] = pd.Categorical(values.where(values.isin(kept)), categories=kept)
    return pd.DataFrame(columns)
