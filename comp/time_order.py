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
    """``values`` as sortable numbers (numbers as they are, dates and times as their instant:
    day first when the column writes it so, offsets converted); a missing or unreadable value
    is a one-line error naming its row."""
    from comp.data.tabular import parse_dates

    text = values.astype("string").str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().all():
        return numbers.to_numpy(dtype=np.float64)
    parsed = parse_dates(text)
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{where} row {row + 2}: {column}={values.iloc[row]!r} is not a date, time or number; "
                        f"split.time_column needs one in every row")
    return (parsed - pd.Timestamp("1970-01-01")).dt.total_seconds().to_numpy(dtype=np.float64)


def forward_folds(times: np.ndarray, n_folds: int) -> np.ndarray:
    """Each row's block in time order as fold numbers: -2 (``HISTORY``) for the first block,
    then 0..folds-1. ``folds + 1`` blocks of about equal rows, cut between values (a value's
    rows stay in one block) and each holding at least one value. Raises when the column has
    too few distinct values for the blocks."""
    from comp.training.cv import HISTORY

    distinct, inverse, counts = np.unique(times, return_inverse=True, return_counts=True)
    blocks = n_folds + 1
    if len(distinct) < blocks:
        raise DataError(f"split.time_column has {len(distinct)} distinct value(s), fewer than the {blocks} "
                        f"time blocks split.folds={n_folds} needs; lower split.folds")
    before = np.concatenate([[0], np.cumsum(counts)[:-1]])  # rows earlier than each value
    starts = [0]
    for b in range(1, blocks):  # block b starts at the first value with b/blocks of the rows before it
        wanted = int(np.searchsorted(before, b * len(times) / blocks))
        starts.append(min(max(wanted, starts[-1] + 1), len(distinct) - (blocks - b)))
    block = np.searchsorted(np.array(starts), np.arange(len(distinct)), side="right") - 1
    block = block[inverse]
    return np.where(block == 0, HISTORY, block - 1).astype(np.int64)


def later_test_columns(train: pd.DataFrame, test: pd.DataFrame | None, skip: set[str]) -> list[str]:
    """Columns of train and test that read as dates in both, with every test value after
    every train value: the test set is the future, and folds should be too."""
    from comp.data.tabular import DATE, parse_dates

    if test is None:
        return []
    found = []
    for column in train.columns:
        if column in skip or column not in test.columns:
            continue
        a, b = train[column].dropna().astype(str), test[column].dropna().astype(str)
        # A sample first: only columns written as dates are parsed whole.
        if a.empty or b.empty or a.head(200).str.match(DATE).mean() < TIME_SHARE \
                or b.head(200).str.match(DATE).mean() < TIME_SHARE:
            continue
        da, db = parse_dates(a), parse_dates(b)
        if da.notna().mean() >= TIME_SHARE and db.notna().mean() >= TIME_SHARE and db.min() > da.max():
            found.append(column)
    return found
