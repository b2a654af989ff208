"""Gradient boosting on tables: scikit-learn's histogram GBM, a non-Keras model plugin.

Categorical columns use the estimator's native categorical splits (pandas ``category``
columns, at most 250 categories each), missing values its native missing-value handling.
It learns on the same folds as the Keras models and its predictions take the same form,
so it can be scored, blended and submitted alike.
"""
from __future__ import annotations

from comp.api import TABULAR, EstimatorModel


def _build(input_spec, task, hp):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    settings = dict(
        learning_rate=hp.Float("learning_rate", 0.01, 0.3, sampling="log", default=0.05),
        max_iter=hp.Int("max_iter", 50, 2000, sampling="log", default=300),
        max_leaf_nodes=hp.Int("max_leaf_nodes", 4, 128, sampling="log", default=15),
        min_samples_leaf=hp.Int("min_samples_leaf", 2, 100, sampling="log", default=10),
        l2_regularization=hp.Float("l2_regularization", 0.0, 10.0, default=0.0),
        categorical_features="from_dtype",
        early_stopping="auto",  # on above 10,000 rows, with 10% of them held out
        random_state=0,
    )
    role = task.estimator_role  # the task kind says whether it needs a classifier or a regressor
    return (HistGradientBoostingRegressor if role == "regressor" else HistGradientBoostingClassifier)(**settings)


hgb = EstimatorModel(
    build=_build,
    modalities=(TABULAR,),
    tasks=("classification", "multilabel", "regression"),
    description="scikit-learn HistGradientBoosting (classifier or regressor as the task needs)",
    regularizers={"l2_regularization": 1.0, "min_samples_leaf": 30},
)
