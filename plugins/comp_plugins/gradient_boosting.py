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


def _build_lightgbm(input_spec, task, hp):
    try:
        import lightgbm
    except ImportError:
        from comp.errors import ConfigError

        raise ConfigError("model plugin 'lightgbm' needs the lightgbm package: pip install 'comp[boost]'") from None
    settings = dict(
        learning_rate=hp.Float("learning_rate", 0.01, 0.3, sampling="log", default=0.05),
        n_estimators=hp.Int("n_estimators", 50, 2000, sampling="log", default=400),
        num_leaves=hp.Int("num_leaves", 4, 256, sampling="log", default=31),
        min_child_samples=hp.Int("min_child_samples", 2, 100, sampling="log", default=20),
        subsample=hp.Float("subsample", 0.5, 1.0, default=0.8),
        colsample_bytree=hp.Float("colsample_bytree", 0.3, 1.0, default=0.8),
        reg_lambda=hp.Float("reg_lambda", 0.0, 10.0, default=0.0),
        subsample_freq=1,  # row subsampling on every tree (off at LightGBM's default of 0)
        n_jobs=None,  # OpenMP's thread count, which comp.threads sets for the fold
        verbose=-1, random_state=0,
    )
    role = task.estimator_role
    return (lightgbm.LGBMRegressor if role == "regressor" else lightgbm.LGBMClassifier)(**settings)


# Measured in benchmarks/README.md ("What a table run's unused time could buy"): blended with the
# default portfolio it paid on the largest tables (diamonds RMSE 0.0880 against hgb's 0.0903),
# not on the small ones, so it is an optional plugin (`comp[boost]`), not a default.
lightgbm = EstimatorModel(
    build=_build_lightgbm,
    modalities=(TABULAR,),
    tasks=("classification", "multilabel", "regression"),
    description="LightGBM gradient boosting (pip install 'comp[boost]'): native categories, row and column "
                "subsampling",
    regularizers={"reg_lambda": 1.0, "min_child_samples": 50},
)
