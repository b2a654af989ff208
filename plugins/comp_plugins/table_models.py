"""Model plugins for tables beside gradient boosting: forests, a linear model, nearest neighbours.

Each is a scikit-learn pipeline (``comp_plugins.table_encoding`` for the columns, then the
estimator) behind ``comp.api.EstimatorModel``, found through the ``comp.models`` entry points
like any third party's. They are the table portfolio of ``baseline.variants=auto``: models
that err differently from boosted trees, for the ensemble stage to blend (a Caruana blend of
diverse families is what wins on tables: AutoGluon, arXiv 2003.06505; TabArena, arXiv
2506.16791).
"""
from __future__ import annotations

from comp.api import TABULAR, EstimatorModel

ALL_TASKS = ("classification", "multilabel", "regression")


def _pipeline(encoder, estimator):
    from sklearn.pipeline import Pipeline

    # The step is named "model": comp.training.bounded_fit grows a forest's trees through it.
    return Pipeline([("columns", encoder), ("model", estimator)])


def _forest(extra: bool):
    def build(input_spec, task, hp):
        from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier,
                                      RandomForestRegressor)

        from comp_plugins.table_encoding import parallel_jobs, tree_encoder

        regressor = task.estimator_role == "regressor"
        kind = ((ExtraTreesRegressor, ExtraTreesClassifier) if extra
                else (RandomForestRegressor, RandomForestClassifier))[0 if regressor else 1]
        # Regression forests split on every feature by default (scikit-learn's and AutoGluon's
        # choice); classification forests on the square root of them.
        features = hp.Choice("max_features", ["sqrt", "0.5", "1.0"], default="1.0" if regressor else "sqrt")
        estimator = kind(
            n_estimators=hp.Int("n_estimators", 50, 1000, sampling="log", default=300),
            max_features=features if features == "sqrt" else float(features),
            min_samples_leaf=hp.Int("min_samples_leaf", 1, 30, sampling="log", default=1),
            n_jobs=parallel_jobs(), random_state=0)
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
    return _pipeline(scaled_encoder(splines=True), estimator)


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
