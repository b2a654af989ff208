"""Time-ordered rows: forward-chaining folds on a date column, and the evidence that a
competition's test period comes after its train period (docs/recipe.md 2).

When the test rows are the future, a shuffled k-fold scores a model on rows older than some
it learnt from, and its OOF flatters it. Forward chaining (scikit-learn's
``TimeSeriesSplit``, here on the column's values, so rows of one date stay together) cuts the
rows, in time order, into ``folds + 1`` blocks: the first is history only, and fold ``k`` is
scored on block ``k + 1`` after learning from every block before it
(``comp.training.cv.fit_rows``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from comp.errors import DataError

# A train/test column is read as a time when at least this share of its values parse.
TIME_SHARE = 0.95


def time_values(values: pd.Series, where: str, column: str) -> np.ndarray:
    """``values`` as sortable numbers (numbers as they are, dates and times as nanoseconds);
    a missing or unreadable value is a one-line error naming its row."""
    text = values.astype("string").str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().all():
        return numbers.to_numpy(dtype=np.float64)
    parsed = _dates(text)
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{where} row {row + 2}: {column}={values.iloc[row]!r} is not a date, time or number; "
                        f"split.time_column needs one in every row")
    return parsed.astype("int64").to_numpy(dtype=np.float64)


def _dates(text: pd.Series) -> pd.Series:
    import warnings

    with warnings.catch_warnings():  # "could not infer format": each value is then parsed alone, as wanted
        warnings.simplefilter("ignore")
        return pd.to_datetime(text, errors="coerce", format="mixed")


def forward_folds(times: np.ndarray, n_folds: int) -> np.ndarray:
    """Each row's block in time order, ``folds + 1`` blocks of about equal rows with every
    value's rows in one block, as fold numbers: -2 (``HISTORY``) for the first block, then
    0..folds-1. Raises when the column has too few distinct values for the blocks."""
    from comp.training.cv import HISTORY

    distinct, inverse, counts = np.unique(times, return_inverse=True, return_counts=True)
    if len(distinct) < n_folds + 1:
        raise DataError(f"split.time_column has {len(distinct)} distinct value(s), fewer than the {n_folds + 1} "
                        f"time blocks split.folds={n_folds} needs; lower split.folds")
    before = np.concatenate([[0], np.cumsum(counts)[:-1]])  # rows earlier than each value
    block = np.minimum((before * (n_folds + 1)) // len(times), n_folds)[inverse]
    return np.where(block == 0, HISTORY, block - 1).astype(np.int64)


def later_test_columns(train: pd.DataFrame, test: pd.DataFrame | None, skip: set[str]) -> list[str]:
    """Columns of train and test that read as dates in both, with every test value after
    every train value: the test set is the future, and folds should be too."""
    if test is None:
        return []
    found = []
    for column in train.columns:
        if column in skip or column not in test.columns:
            continue
        a, b = train[column].dropna(), test[column].dropna()
        if a.empty or b.empty or pd.to_numeric(a, errors="coerce").notna().mean() >= TIME_SHARE:
            continue  # numbers are not taken for times unless the user says so
        da, db = _dates(a.astype("string")), _dates(b.astype("string"))
        if da.notna().mean() >= TIME_SHARE and db.notna().mean() >= TIME_SHARE and db.min() > da.max():
            found.append(column)
    return found
