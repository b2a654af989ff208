"""Fitting an estimator that cannot be stopped part-way within a deadline: in steps.

A gradient-boosting fit is one native call: once started it runs to ``max_iter`` however long
that takes (a 455-row table's fold took 287 s beside a busy process, issue 21). Estimators
that add iterations to a fitted model (scikit-learn's ``warm_start``: the histogram GBMs'
``max_iter``, the tree ensembles' ``n_estimators``, also as a pipeline's last step) are fitted
here a step of iterations at a time, each step's seconds measured: a step, or the part of it
the time left holds, and none once less than a quarter of a step fits. No library offers a
time limit for these estimators, so the loop is written by hand.

An estimator with a ``time_limit`` parameter (seconds; the CatBoost plugin's, the linear
model's row sample) stops itself: it is told the seconds it has and keeps what it fitted by
then (iterations, or rows: ``rows_fitted_`` of ``rows_offered_``).

Without a deadline, or for an estimator that does not grow so (a linear model's ``max_iter``
counts solver steps, not parts of the model), it is one plain ``fit``: the same model as ever.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from comp import clock

FIRST_STEP = 0.1  # of max_iter, a GBM's first step: it also pays the binning, so it is timed apart
FIRST_MOST = 30  # ... at most this many (300 of hgb_long's 3,000 iterations on 209,500 rows: 4.8 s)
FIRST_TREES = 0.01  # of n_estimators, a forest's: every tree costs alike (10%, 30 trees on 209,500 rows, took 5.9 s)
STEPS = 8  # the later steps: the rest of max_iter in this many
LEAST_STEP = 0.25  # of a step: a shorter one that the time left holds is still taken, a shorter still not


@dataclass
class BoundedFit:
    """``fit(estimator, x, y, share)``: fit within ``share`` of the time left to ``deadline``
    (a ``comp.clock`` time). ``stopped`` lists what a deadline cut: (parts fitted, asked,
    what they count: "iterations" or "rows")."""

    deadline: float = math.inf
    stopped: list[tuple[int, int, str]] = field(default_factory=list)

    def __call__(self, estimator: Any, x, y, share: float = 1.0) -> Any:
        if math.isfinite(self.deadline) and "time_limit" in _params(estimator):
            return self._within(estimator, x, y, share)
        grows = _growing_parameter(estimator)
        if not math.isfinite(self.deadline) or grows is None:
            return estimator.fit(x, y)
        prefix = grows[: grows.rfind("__") + 2] if "__" in grows else ""  # a pipeline's step: its own warm start
        warm, grown = prefix + "warm_start", _fitted_part(estimator)
        end = clock.now() + max(self.deadline - clock.now(), 0.0) * share
        asked = int(estimator.get_params()[grows])
        done = max(1, round(asked * FIRST_TREES) if grows.endswith("n_estimators")
                   else min(round(asked * FIRST_STEP), FIRST_MOST))
        step = max(1, math.ceil((asked - done) / STEPS))
        began = clock.now()
        estimator.set_params(**{warm: True, grows: done})
        estimator.fit(x, y)
        per_iteration = (clock.now() - began) / done  # the binning included: a cautious forecast
        while done < asked and _iterations(grown, done) >= done:  # fewer: its early stopping ended it
            # the next step, or the part of it the time left holds (a whole step of a long
            # schedule can be longer than a short share: 371 of hgb_long's 3,000 iterations)
            fits = math.floor(max(end - clock.now(), 0.0) / per_iteration) if per_iteration > 0 else step
            following = min(asked, done + step, done + fits)
            if following - done < max(1, math.ceil(step * LEAST_STEP)) and following < asked:
                self.stopped.append((done, asked, "iterations"))
                break
            began = clock.now()
            estimator.set_params(**{grows: following})
            estimator.fit(x, y)
            per_iteration = (clock.now() - began) / max(following - done, 1)
            done = following
        # The fitted model says what it is: the iterations it has, no warm start left switched on.
        estimator.set_params(**{warm: False, grows: min(done, asked)})
        return estimator


    def _within(self, estimator: Any, x, y, share: float) -> Any:
        """An estimator that stops itself: told its seconds (``time_limit``), it keeps what it
        fitted by then; ``n_iter_`` under ``iterations`` says the deadline cut it."""
        end = clock.now() + max(self.deadline - clock.now(), 0.0) * share
        estimator.set_params(time_limit=max(end - clock.now(), 0.0))
        estimator.fit(x, y)
        estimator.set_params(time_limit=math.inf)  # the fitted model carries no deadline of this run
        done, asked, unit = getattr(estimator, "n_iter_", None), _params(estimator).get("iterations"), "iterations"
        if hasattr(estimator, "rows_fitted_"):  # one that fits fewer rows in the time (the linear model's)
            done, asked, unit = estimator.rows_fitted_, estimator.rows_offered_, "rows"
        if done is not None and asked and done < asked:
            self.stopped.append((int(done), int(asked), unit))
        return estimator


def _params(estimator: Any) -> dict:
    return estimator.get_params() if hasattr(estimator, "get_params") else {}


def _growing_parameter(estimator: Any) -> str | None:
    """The parameter that counts the parts a warm-started fit adds (for a pipeline, its last
    step's, as ``step__name``: the steps before it are refitted, the model grows), or None."""
    from sklearn.ensemble import BaseEnsemble, HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        name, last = estimator.steps[-1]
        inner = _growing_parameter(last)
        return f"{name}__{inner}" if inner else None
    params = estimator.get_params() if hasattr(estimator, "get_params") else {}
    if "warm_start" not in params:
        return None
    if isinstance(estimator, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        return "max_iter"
    if isinstance(estimator, BaseEnsemble) and "n_estimators" in params:
        return "n_estimators"
    return None


def _fitted_part(estimator: Any) -> Any:
    """The estimator that grows: a pipeline's last step (fitted in place), or the estimator."""
    from sklearn.pipeline import Pipeline

    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator


def _iterations(estimator: Any, default: int) -> int:
    """The parts fitted so far: fewer than asked where the estimator's early stopping ended it."""
    for name in ("n_iter_", "n_estimators_"):
        if hasattr(estimator, name):
            return int(getattr(estimator, name))
    return default
