"""CatBoost on tables, an optional model plugin (``pip install -e ".[boost]"``): name it, as
``model=catboost`` or in ``baseline.variants=[hgb_long, catboost, extra_trees, linear]``.

CatBoost's ordered boosting and its own encoding of categories (ordered target statistics,
computed so that no row sees its own label) made it the best single model on four of eight
real tables in comp's measurements (credit, hmda, attrition, default), and outside the
pipeline the default portfolio's nested blend gained from it on credit (+0.0016 ROC-AUC),
diamonds and ames (about 1% of the RMSE). In the pipeline at ``budget=5m``, though, the
held-back scores of five tables moved by at most 0.0001 with it in the default portfolio,
at 0-42 s more (benchmarks/README.md, "CatBoost beside the portfolio"), so it is not in
the default.

Its fit is bounded like every estimator's: a deadline (``time_limit``, set by
``comp.training.bounded_fit``) stops it between iterations, keeping the trees it has. It runs
its own threads (no OpenMP), as many as the fit's native thread pools are allowed
(``comp.threads``: the cores free now).
"""
from __future__ import annotations

import math
import time

from comp.api import TABULAR, EstimatorModel

MISSING = "(missing)"  # CatBoost takes categories as strings; a missing one is a category of its own


class CatBoostTable:
    """A scikit-learn style estimator: CatBoost's classifier or regressor on a DataFrame whose
    categories are pandas ``category`` columns (numbers float, NaN missing)."""

    def __init__(self, role: str = "classifier", iterations: int = 1000, depth: int = 6, l2_leaf_reg: float = 3.0,
                 time_limit: float = math.inf):
        self.role, self.iterations, self.depth, self.l2_leaf_reg = role, iterations, depth, l2_leaf_reg
        self.time_limit = time_limit

    def get_params(self, deep: bool = True) -> dict:
        return {"role": self.role, "iterations": self.iterations, "depth": self.depth,
                "l2_leaf_reg": self.l2_leaf_reg, "time_limit": self.time_limit}

    def set_params(self, **params):
        for name, value in params.items():
            setattr(self, name, value)
        return self

    @staticmethod
    def _columns(x):
        """(x with its categories as strings, their names)."""
        categories = [c for c in x.columns if str(x[c].dtype) == "category"]
        if not categories:
            return x, []
        x = x.copy()
        for c in categories:
            x[c] = x[c].astype(object).where(x[c].notna(), MISSING).astype(str)
        return x, categories

    def fit(self, x, y):
        from catboost import CatBoostClassifier, CatBoostRegressor

        x, categories = self._columns(x)
        kind = CatBoostRegressor if self.role == "regressor" else CatBoostClassifier
        self.model_ = kind(iterations=int(self.iterations), depth=int(self.depth), l2_leaf_reg=float(self.l2_leaf_reg),
                           thread_count=_threads(), random_seed=0, verbose=0, allow_writing_files=False,
                           cat_features=categories)
        stop = _Deadline(time.monotonic() + self.time_limit) if math.isfinite(self.time_limit) else None
        self.model_.fit(x, y, callbacks=[stop] if stop else None)
        self.n_iter_ = int(self.model_.tree_count_)  # fewer than asked: the deadline stopped it
        if self.role != "regressor":
            self.classes_ = self.model_.classes_
        return self

    def predict(self, x):
        return self.model_.predict(self._columns(x)[0])

    def predict_proba(self, x):
        return self.model_.predict_proba(self._columns(x)[0])


class _Deadline:
    """CatBoost's callback: go on while the time is not up (it keeps the trees fitted)."""

    def __init__(self, end: float):
        self.end = end

    def after_iteration(self, info) -> bool:
        return time.monotonic() < self.end


def _threads() -> int:
    """The threads the fit's native pools may use now: what comp.threads (threadpoolctl) set
    for OpenMP, else every core."""
    import os

    from threadpoolctl import threadpool_info

    limits = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "openmp"]
    return max(1, min(limits)) if limits else (os.cpu_count() or 1)


def _build(input_spec, task, hp):
    return CatBoostTable(
        role=task.estimator_role,  # the task kind says whether it needs a classifier or a regressor
        iterations=hp.Int("iterations", 100, 5000, sampling="log", default=1000),
        depth=hp.Int("depth", 3, 10, default=6),
        l2_leaf_reg=hp.Float("l2_leaf_reg", 0.5, 30.0, sampling="log", default=3.0))


def _check(hp: dict) -> None:
    from comp.errors import ConfigError

    try:
        import catboost  # noqa: F401
    except ImportError:
        raise ConfigError("model=catboost needs CatBoost, which is not installed: pip install 'comp[boost]'") from None


catboost = EstimatorModel(
    build=_build,
    modalities=(TABULAR,),
    tasks=("classification", "multilabel", "regression"),
    description="CatBoost (ordered boosting, its own encoding of categories; pip install 'comp[boost]')",
    regularizers={"l2_leaf_reg": 10.0, "depth": 4},
    preflight=_check,
)
