"""How the table models other than gradient boosting see a table's columns.

Every model plugin for tables gets the same DataFrame (numbers as float with NaN, categories
as pandas ``category`` over the fit rows' frequent values, missing or rare as NaN). Trees
split on numbers, so categories become their codes; distance and linear models need numbers
on one scale and one column per category. Both are scikit-learn transformers fitted inside
the estimator's pipeline, so on each fold they learn from that fold's training rows only.
"""
from __future__ import annotations

import numpy as np


def _numeric(x) -> list[str]:
    return [c for c in x.columns if not str(x[c].dtype) == "category"]


def _categorical(x) -> list[str]:
    return [c for c in x.columns if str(x[c].dtype) == "category"]


def tree_encoder():
    """Numbers as they are (NaN kept: scikit-learn's forests route missing values; an infinity
    made NaN too), categories as their codes (missing and unseen: NaN)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

    codes = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan)
    return ColumnTransformer([("numbers", FunctionTransformer(finite, feature_names_out="one-to-one"), _numeric),
                              ("categories", codes, _categorical)], verbose_feature_names_out=False)


def scaled_encoder(splines: bool):
    """Numbers: median-imputed, mapped through their quantiles to one scale (robust to outliers
    and skew), with ``splines`` also as a cubic spline basis over those quantiles (a linear
    model then fits a curve per column), and a 0/1 column for each one with missing cells;
    categories one-hot, a category seen in fewer than 5 training rows pooled with the other
    rare ones."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, QuantileTransformer, SplineTransformer

    as_finite = FunctionTransformer(finite, feature_names_out="one-to-one")
    quantiles = QuantileTransformer(n_quantiles=100, output_distribution="uniform", subsample=100_000, random_state=0)
    centred = FunctionTransformer(_centre, feature_names_out="one-to-one")
    shape = make_union(centred, SplineTransformer(n_knots=5, degree=3, knots="uniform")) if splines else centred
    scaled = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), quantiles, shape)
    numbers = make_pipeline(as_finite, make_union(scaled, MissingIndicator(error_on_new=False)))
    categories = make_pipeline(
        FunctionTransformer(_as_text, feature_names_out="one-to-one"),
        OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5, sparse_output=False))
    return ColumnTransformer([("numbers", numbers, _numeric), ("categories", categories, _categorical)],
                             verbose_feature_names_out=False)


def finite(numbers):
    """An infinite number as a missing one: what the tables' readers let through (``inf`` in a
    CSV) and float32 overflows to, which no model here can learn from."""
    values = np.asarray(numbers, dtype=np.float64)
    return np.where(np.isfinite(values), values, np.nan)


def _centre(uniform):
    """Quantiles in [0, 1] to [-1, 1], centred like the spline basis' neighbours. (A function
    of the module, not a lambda: the fitted pipeline is pickled with the fold model.)"""
    return 2.0 * uniform - 1.0


def _as_text(frame):
    """Category columns as plain strings, a missing cell as its own value."""
    return frame.astype(object).where(frame.notna(), "(missing)").astype(str)
