"""Gradient boosting on tables: scikit-learn's histogram GBM, a non-Keras model plugin.

Categorical columns use the estimator's native categorical splits (pandas ``category``
columns, at most 250 categories each), missing values its native missing-value handling.
It learns on the same folds as the Keras models and its predictions take the same form,
so it can be scored, blended and submitted alike.

Two configurations, AutoGluon-"zeroshot" style (a small fixed portfolio of settings rather
than one): ``hgb``, 300 iterations of 15 leaves (31 from 30,000 training rows a fold), the
main model of a table run, searched by stage tune; and ``hgb_long``, 31 leaves grown until its own early stopping says so, a member
of the default portfolio on tables of 10,000 rows or more. On 8 of 10 real tables the blend gained nothing from the second
(within +-0.0005); on the largest, 30,000 diamonds, 300 iterations underfit and the blend's
RMSE fell from 0.0903 to 0.0872, what LightGBM, XGBoost and CatBoost together gave it
(benchmarks/README.md, "comp against AutoGluon").
"""
from __future__ import annotations

from comp.api import TABULAR, EstimatorModel


def _estimator(task, settings):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    role = task.estimator_role  # the task kind says whether it needs a classifier or a regressor
    return (HistGradientBoostingRegressor if role == "regressor" else HistGradientBoostingClassifier)(**settings)


# From this many training rows a fold (the run's, ``InputSpec.rows``) the trees start at 31
# leaves (``LARGE_LEAVES``) instead of the configuration's default. 5-fold OOF: on flights
# (262,000 rows a fold) 31 leaves scored 0.9268 ROC-AUC against 0.9221 with 15, on films'
# ratings (47,000) 1.3288 RMSE against 1.3317, on two more of 36,000 and 204,000 the same within
# 0.0001; below, 15 did as well or better on 3 of 4 tables, the largest 22,500 a fold
# (benchmarks/README.md, "Gradient boosting's leaves by table size").
LARGE_ROWS = 30_000
LARGE_LEAVES = 31


def _configuration(max_iter: tuple[int, int, int], leaves: tuple[int, int, int], min_samples_leaf: int, **fixed):
    """A ``build`` whose knobs start at these defaults ((low, high, default) for the ranges;
    the leaves' default at least ``LARGE_LEAVES`` on ``LARGE_ROWS`` training rows or more)."""

    def build(input_spec, task, hp):
        large = getattr(input_spec, "rows", 0) >= LARGE_ROWS  # no spec (a bare probe): not known, not large
        most_leaves = max(leaves[2], LARGE_LEAVES) if large else leaves[2]
        return _estimator(task, dict(
            learning_rate=hp.Float("learning_rate", 0.01, 0.3, sampling="log", default=0.05),
            max_iter=hp.Int("max_iter", max_iter[0], max_iter[1], sampling="log", default=max_iter[2]),
            max_leaf_nodes=hp.Int("max_leaf_nodes", leaves[0], leaves[1], sampling="log", default=most_leaves),
            min_samples_leaf=hp.Int("min_samples_leaf", 2, 100, sampling="log", default=min_samples_leaf),
            l2_regularization=hp.Float("l2_regularization", 0.0, 10.0, default=0.0),
            categorical_features="from_dtype",
            random_state=0,
            **fixed,
        ))

    return build


# early_stopping="auto": on above 10,000 rows, with 10% of them held out
_build = _configuration((50, 2000, 300), (4, 128, 15), 10, early_stopping="auto")
# Early stopping on every table it trains on: max_iter is a cap, and the fit ends when 30
# rounds in a row did not improve the loss on 10% of the rows held out.
_build_long = _configuration((100, 5000, 3000), (4, 256, 31), 20, early_stopping=True, n_iter_no_change=30,
                             validation_fraction=0.1)


hgb = EstimatorModel(
    build=_build,
    modalities=(TABULAR,),
    tasks=("classification", "multilabel", "regression"),
    description="scikit-learn HistGradientBoosting (classifier or regressor as the task needs)",
    regularizers={"l2_regularization": 1.0, "min_samples_leaf": 30},
)
hgb_long = EstimatorModel(
    build=_build_long,
    modalities=(TABULAR,),
    tasks=("classification", "multilabel", "regression"),
    description="scikit-learn HistGradientBoosting, 31 leaves, grown until its early stopping (up to 3000 iterations)",
    regularizers={"l2_regularization": 1.0, "min_samples_leaf": 50},
    # Where scikit-learn's own "auto" starts early stopping: below, a tenth of a fold is too
    # few rows to stop on, and the second configuration gained nothing on 8 smaller tables.
    min_rows=10_000,
)
