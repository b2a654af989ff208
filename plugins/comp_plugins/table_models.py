"""Model plugins for tables beside gradient boosting: forests, a linear model, nearest neighbours.

Each is a scikit-learn pipeline (``comp_plugins.table_encoding`` for the columns, then the
estimator) behind ``comp.api.EstimatorModel``, found through the ``comp.models`` entry points
like any third party's. They are the table portfolio of ``baseline.variants=auto``: models
that err differently from boosted trees, for the ensemble stage to blend (a Caruana blend of
diverse families is what wins on tables: AutoGluon, arXiv 2003.06505; TabArena, arXiv
2506.16791).
"""
from __future__ import annotations

import math

from comp.api import TABULAR, EstimatorModel

ALL_TASKS = ("classification", "multilabel", "regression")
MAX_LEAVES = 4096
MAX_LINEAR_ROWS = 200_000  # the linear model fits on a sample of at most this many rows


def _pipeline(encoder, estimator):
    from sklearn.pipeline import Pipeline

    # The step is named "model": comp.training.bounded_fit grows a forest's trees through it.
    return Pipeline([("columns", encoder), ("model", estimator)])


def _forest(extra: bool):
    def build(input_spec, task, hp):
        from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier,
                                      RandomForestRegressor)

        from comp_plugins.table_encoding import tree_encoder

        regressor = task.estimator_role == "regressor"
        kind = ((ExtraTreesRegressor, ExtraTreesClassifier) if extra
                else (RandomForestRegressor, RandomForestClassifier))[0 if regressor else 1]
        # Regression forests split on every feature by default (scikit-learn's and AutoGluon's
        # choice); classification forests on the square root of them.
        features = hp.Choice("max_features", ["sqrt", "0.5", "1.0"], default="1.0" if regressor else "sqrt")
        # At most MAX_LEAVES leaves a tree: unbounded, a regression tree grows a leaf for about
        # every row (a fold of 24,000 diamonds pickled to 959 MB); capped, 177 MB whatever the
        # rows, and its RMSE 0.0933 against 0.0940 (benchmarks/README.md, "A table portfolio").
        estimator = kind(
            n_estimators=hp.Int("n_estimators", 50, 1000, sampling="log", default=300),
            max_features=features if features == "sqrt" else float(features),
            min_samples_leaf=hp.Int("min_samples_leaf", 1, 30, sampling="log", default=1),
            max_leaf_nodes=hp.Int("max_leaf_nodes", 64, 16384, sampling="log", default=MAX_LEAVES),
            n_jobs=None, random_state=0)  # n_jobs: comp.threads' count for the fold (joblib's config)
        return _pipeline(tree_encoder(), estimator)

    return build


def _linear(input_spec, task, hp):
    from sklearn.linear_model import LogisticRegression, Ridge

    from comp_plugins.table_encoding import scaled_encoder

    strength = hp.Float("regularization", 1e-3, 1e3, sampling="log", default=1.0)
    if task.estimator_role == "regressor":
        estimator = Ridge(alpha=strength)
    else:
        estimator = LogisticRegression(C=1.0 / strength, max_iter=2000)
    return SampledPipeline([("columns", scaled_encoder(splines=True)), ("model", estimator)])


class SampledPipeline:
    """A pipeline fitted on at most ``MAX_LINEAR_ROWS`` rows (a seeded sample): a linear model
    on eight dense columns a number gains nothing from millions of rows that a sample does not
    give it, and would hold them all in memory at once. Written by hand: scikit-learn's
    pipelines cannot drop rows.

    With ``time_limit`` (seconds; ``comp.training.bounded_fit`` sets it under a budget) it
    fits a tenth of the rows first (at least ``FIRST_ROWS``), times that, and fits again on as
    many rows as the rest of the time holds, or keeps the first fit when that is not many
    more (a solver cannot be stopped part-way: a logistic regression on 209,500 rows of
    flights took 15.6 s a fold, 20,000 rows 1.1 s). ``rows_fitted_`` and ``rows_offered_``
    say what it did."""

    FIRST_ROWS = 5_000
    GROWTH = 1.5  # the solver needs more iterations on more rows: 55 us a row on 20,000, 74 on 209,500
    time_limit, max_rows = math.inf, MAX_LINEAR_ROWS  # also what a model pickled before these knobs has

    def __init__(self, steps, time_limit: float = math.inf, max_rows: int = MAX_LINEAR_ROWS):
        from sklearn.pipeline import Pipeline

        self.pipeline = Pipeline(steps)
        self.time_limit, self.max_rows = time_limit, max_rows

    def get_params(self, deep: bool = False) -> dict:
        return {"time_limit": self.time_limit, "max_rows": self.max_rows}

    def set_params(self, **params):
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def fit(self, x, y):
        import time

        import numpy as np

        y = np.asarray(y)
        order = np.random.default_rng(0).permutation(len(x))
        rows = self.rows_offered_ = min(len(x), self.max_rows)
        if math.isfinite(self.time_limit) and rows > 2 * self.FIRST_ROWS:
            first, began = max(self.FIRST_ROWS, rows // 10), time.monotonic()
            self._fit_rows(x, y, order[:first])
            spent = time.monotonic() - began
            fits = int((self.time_limit - spent) / (max(spent, 1e-6) / first * self.GROWTH))
            if fits < 2 * first:  # not worth a second fit: keep the first
                self.rows_fitted_ = first
                return self
            rows = min(rows, fits)
        self._fit_rows(x, y, order[:rows])
        self.rows_fitted_ = rows
        return self

    def _fit_rows(self, x, y, rows) -> None:
        import numpy as np

        rows = np.sort(rows)
        self.pipeline.fit(x.iloc[rows] if len(rows) < len(x) else x, y[rows] if len(rows) < len(x) else y)

    def predict(self, x):
        return self.pipeline.predict(x)

    def predict_proba(self, x):
        return self.pipeline.predict_proba(x)

    @property
    def classes_(self):
        return self.pipeline.classes_


def _knn(input_spec, task, hp):
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    from comp_plugins.table_encoding import scaled_encoder

    kind = KNeighborsRegressor if task.estimator_role == "regressor" else KNeighborsClassifier
    estimator = kind(n_neighbors=hp.Int("n_neighbors", 3, 100, sampling="log", default=15),
                     weights=hp.Choice("weights", ["distance", "uniform"], default="distance"))
    return _pipeline(scaled_encoder(splines=False), estimator)


random_forest = EstimatorModel(
    build=_forest(extra=False), modalities=(TABULAR,), tasks=ALL_TASKS,
    description="scikit-learn random forest (classifier or regressor), categories as codes",
    regularizers={"min_samples_leaf": 5})
extra_trees = EstimatorModel(
    build=_forest(extra=True), modalities=(TABULAR,), tasks=ALL_TASKS,
    description="scikit-learn extremely randomized trees (classifier or regressor), categories as codes",
    regularizers={"min_samples_leaf": 5})
linear = EstimatorModel(
    build=_linear, modalities=(TABULAR,), tasks=ALL_TASKS,
    description="logistic regression or ridge on quantile-scaled numbers with a spline basis and one-hot categories",
    regularizers={"regularization": 10.0})
knn = EstimatorModel(
    build=_knn, modalities=(TABULAR,), tasks=ALL_TASKS,
    description="k nearest neighbours on quantile-scaled numbers and one-hot categories",
    regularizers={"n_neighbors": 40})
