"""Blend weights from out-of-fold predictions only (docs/recipe.md 7).

Greedy ensemble selection with replacement (Caruana et al., "Ensemble selection from
libraries of models", ICML 2004): start from the best candidate, add whichever candidate
(again, if it helps) improves the blend's score most, keep the best blend seen. Weights are
the selection counts over their sum, so they are non-negative, sum to one, and a candidate
that never helps gets none. It works for any metric the task scores, rank-based ones
included. scikit-learn has no ensemble selection; this is the whole algorithm.

Selection on the same rows it is scored on flatters the blend, so ``nested_selection``
scores it honestly: for each fold, weights chosen on the other folds' rows predict that
fold's rows.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from comp.objective import Objective

Scorer = Callable[[np.ndarray, np.ndarray], float]  # (rows, predictions of those rows) -> score


def blend(predictions: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The weighted mean of the candidates' predictions."""
    total = np.zeros(predictions[0].shape, dtype=np.float64)
    for p, w in zip(predictions, weights):
        if w:
            total += w * p
    return (total / max(float(np.sum(weights)), 1e-12)).astype(np.float32)


def greedy_selection(predictions: list[np.ndarray], rows: np.ndarray, score: Scorer, objective: Objective,
                     rounds: int) -> np.ndarray:
    """Weights (summing to one) of the best blend found in ``rounds`` greedy additions, scored
    on ``rows``; ties go to the earlier candidate and to the smaller blend."""
    parts = [p[rows].astype(np.float64) for p in predictions]
    singles = [score(rows, p.astype(np.float32)) for p in parts]
    first = objective.best_index(singles)
    counts = np.zeros(len(parts))
    counts[first] = 1
    total = parts[first].copy()
    best_value, best_counts = singles[first], counts.copy()
    for _ in range(rounds):
        n = counts.sum()
        values = [score(rows, ((total + p) / (n + 1)).astype(np.float32)) for p in parts]
        pick = objective.best_index(values)
        counts[pick] += 1
        total += parts[pick]
        if objective.better(values[pick], best_value, margin=1e-12):
            best_value, best_counts = values[pick], counts.copy()
    return best_counts / best_counts.sum()


def nested_selection(predictions: list[np.ndarray], fold_of: np.ndarray, score: Scorer, objective: Objective,
                     rounds: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(the blend's honest out-of-fold predictions, the weights chosen for each fold): fold
    k's rows are blended with weights selected on the other folds' rows only."""
    out = np.zeros(predictions[0].shape, dtype=np.float32)
    chosen = []
    for k in np.unique(fold_of[fold_of >= 0]):
        inside, outside = np.flatnonzero(fold_of == k), np.flatnonzero((fold_of >= 0) & (fold_of != k))
        weights = greedy_selection(predictions, outside, score, objective, rounds)
        out[inside] = blend([p[inside] for p in predictions], weights)
        chosen.append(weights)
    return out, chosen
