"""How sure a score is, and when one score beats another (docs/recipe.md 11).

Every published score carries a standard error: the spread of its per-fold scores over the
square root of their number. A comparison of two configurations trained on the same folds
is paired: the per-fold differences carry the noise of the rows and of training alike.

Two rules use it:
- ``search_verdict``: the keep gate of the searches (regularize, tune). A one-sided paired
  t-test on the per-fold gains at a stated family-wise false-keep rate (``FALSE_KEEP``):
  tune's best of m trials at FALSE_KEEP / m (Bonferroni); regularize's i-th change (1-based,
  in its order of expected gain) at FALSE_KEEP / 2^i, which sums to FALSE_KEEP over any
  number of changes and gives the most promising ones the most power. With two folds the
  test has one degree of freedom and needs 6.3 standard errors for tune's best of two: a
  search on its digits test (chance to 0.33 accuracy) was refused. Hence three search folds
  by default (2.9 standard errors).
- ``tied``: two candidates whose gap is within one standard error of the paired gains are
  tied, and the tie goes to the simpler one (the ensemble's choices, the submitted stage).

scipy (an sklearn dependency) gives the t quantile; the rest is arithmetic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from comp.objective import Objective

FALSE_KEEP = 0.1  # family-wise rate at which a search keeps a change that has no effect


def standard_error(fold_scores: Sequence[float]) -> float:
    """The standard error of a score that is the mean of ``fold_scores`` (nan with one fold)."""
    values = np.asarray([s for s in fold_scores if s is not None and np.isfinite(s)], dtype=np.float64)
    if len(values) < 2:
        return math.nan
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


def paired_noise(candidate: Sequence[float], reference: Sequence[float], objective: Objective) -> float:
    """The standard error of the per-fold gains of ``candidate`` over ``reference`` (inf with one fold)."""
    diffs = objective.gain(np.asarray(candidate, dtype=np.float64), np.asarray(reference, dtype=np.float64))
    return standard_error(diffs) if len(diffs) > 1 else math.inf


@dataclass(frozen=True)
class Verdict:
    gain: float  # the OOF gain over the reference (positive: better)
    noise: float  # the standard error of the paired per-fold gains
    keep: bool
    needed: float = 1.0  # how many standard errors the gain had to exceed

    @property
    def words(self) -> str:
        return ("kept" if self.keep else "gain within noise" if self.gain > 0 else "no gain" if self.gain == 0
                else "worse")


def critical_t(folds: int, comparisons: int = 1, false_keep: float = FALSE_KEEP) -> float:
    """The one-sided t quantile a paired gain over ``folds`` folds must exceed (in standard
    errors) for a false-keep rate of ``false_keep`` over ``comparisons`` alternatives."""
    from scipy.stats import t

    if folds < 2:
        return math.inf
    return float(t.ppf(1.0 - false_keep / max(comparisons, 1), folds - 1))


def beats(gain: float, noise: float, needed: float = 1.0) -> bool:
    """A gain counts when it is positive and above ``needed`` standard errors; equal to it is
    noise, whatever the rounding."""
    return gain > 1e-9 and gain - needed * noise > 1e-9


def search_verdict(gain: float, candidate: Sequence[float], reference: Sequence[float], objective: Objective,
                   comparisons: int = 1, false_keep: float = FALSE_KEEP) -> Verdict:
    """A search's keep gate: ``gain`` (on all the rows scored) kept only when the paired t-test
    over the per-fold scores rejects "no effect" at ``false_keep`` over ``comparisons``."""
    return _verdict(gain, candidate, reference, objective, critical_t(len(candidate), comparisons, false_keep))


def tied(gain: float, candidate: Sequence[float], reference: Sequence[float], objective: Objective) -> Verdict:
    """``candidate`` over ``reference``: kept (not tied) only when the gain beats one standard
    error of the paired per-fold gains."""
    return _verdict(gain, candidate, reference, objective, 1.0)


def _verdict(gain: float, candidate: Sequence[float], reference: Sequence[float], objective: Objective,
             needed: float) -> Verdict:
    noise = paired_noise(candidate, reference, objective)
    return Verdict(gain, noise, beats(gain, noise, needed), needed)
