"""Temperature scaling of predicted probabilities, chosen on OOF rows and cross-fitted.

A task kind applies the temperature in its own ``metric_inputs`` (softmax or per-label
sigmoid) when its decoding holds ``temperature``; this module chooses it. The choice scores
under the competition's metric, each fold's temperature comes from the other folds, and a
temperature is kept only when that cross-fitted score beats the uncalibrated one, so the
published score stays honest and a metric that only ranks never gets one.
"""
from __future__ import annotations

import numpy as np

KEY = "temperature"
# A log-spaced grid, then a finer one around its best: a step-shaped metric (an AUC) defeats a
# derivative-free line search, and ~25 metric calls a fit cost milliseconds.
COARSE = np.exp(np.linspace(np.log(1 / 32), np.log(32.0), 21))
FINE_POINTS = 9


def softened(logits: np.ndarray, decoding: dict | None) -> np.ndarray:
    """``logits`` divided by the decoding's temperature (unchanged without one)."""
    t = (decoding or {}).get(KEY)
    return logits / t if t else logits


FIT_ROWS = 20_000  # one number needs no more rows: a larger table's are a seeded sample of them


def best(task, y: np.ndarray, predictions: np.ndarray) -> float:
    """The temperature that scores best on these rows (on ``FIT_ROWS`` of them, where more)."""
    if len(y) > FIT_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(len(y), FIT_ROWS, replace=False))
        y, predictions = y[rows], predictions[rows]

    def value(t: float) -> float:
        return task.score(y, predictions, {KEY: t})

    plain = value(1.0)
    if value(0.5) == plain == value(2.0):  # a metric that only ranks (binary AUC): nothing to fit
        return 1.0
    coarse = task.objective.best(COARSE, key=value)
    step = COARSE[1] / COARSE[0]
    fine = coarse * np.exp(np.linspace(-np.log(step), np.log(step), FINE_POINTS))
    return float(task.objective.best([1.0, *fine], key=value))


def fold_decodings(task, y: np.ndarray, predictions: np.ndarray, fold_of: np.ndarray) -> dict[int, dict]:
    """Each fold's temperature fit on the other folds' rows, or {} when it does not pay."""
    return _cross_fit(task, y, predictions, fold_of)[0]


def _cross_fit(task, y: np.ndarray, predictions: np.ndarray, fold_of: np.ndarray) -> tuple[dict[int, dict], float]:
    """(each fold's temperature from the other folds, their cross-fitted score), or ({}, the
    plain score) when that score is no better."""
    plain = task.score(y, predictions)
    folds = np.unique(fold_of)
    if len(folds) < 2:
        return {}, plain
    per_fold = {int(k): {KEY: best(task, y[fold_of != k], predictions[fold_of != k])} for k in folds}
    honest = task.cross_fitted(y, predictions, fold_of, per_fold)
    return (per_fold, honest) if task.objective.better(honest, plain, margin=1e-9) else ({}, plain)


def fit_decoding(task, y: np.ndarray, predictions: np.ndarray, fold_of: np.ndarray) -> tuple[dict, float]:
    """({temperature: T} fit on every row, its cross-fitted score), or ({}, the plain score)."""
    per_fold, score = _cross_fit(task, y, predictions, fold_of)
    return ({KEY: best(task, y, predictions)} if per_fold else {}), score
