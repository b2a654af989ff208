"""Type the feature columns of a tabular competition: numbers, categories or dates.

Types are decided on train and test together, so both get the same columns. A date-like
column (ISO ``2020-01-31``, ``31/01/2020``, with or without a time) becomes three numbers:
days since 1970, month and weekday; the model takes those columns, not the raw string.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from comp.data.inputs import TableInputs
from comp.errors import DataError

NUMERIC_SHARE = 0.95  # a column is numeric when this share of its non-empty values are numbers
MISSING_TOKENS = 3  # ... and the rest are at most this many distinct tokens ('?', 'NA', '-')
DATE = re.compile(r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})([ T]\d{1,2}:\d{2}(:\d{2})?.*)?\s*$")


def read_table(train: pd.DataFrame, test: pd.DataFrame, features: list[str]) -> tuple[TableInputs, TableInputs, list[str]]:
    """Train and test inputs from the string columns ``features``; notes say what was decided."""
    if not features:
        raise DataError("train.csv has no feature columns besides the id and the targets")
    notes: list[str] = []
    both = pd.concat([train[features], test[features]], ignore_index=True)
    n_train = len(train)
    numeric: dict[str, np.ndarray] = {}
    categorical: dict[str, np.ndarray] = {}
    names: dict[str, str] = {}
    missing: set[str] = set()
    used: set[str] = set()

    def key_for(name: str) -> str:
        base = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in str(name)) or "column"
        key, n = base, 2
        while key in used:
            key, n = f"{base}_{n}", n + 1
        used.add(key)
        return key

    for col in features:
        values = both[col]
        present = values.notna() & (values.str.strip() != "")
        numbers = pd.to_numeric(values.where(present), errors="coerce")
        failed = present & numbers.isna()
        if present.sum() and failed.sum() <= (1 - NUMERIC_SHARE) * present.sum() \
                and values[failed].nunique() <= MISSING_TOKENS:
            if failed.any():
                notes.append(f"column {col}: {', '.join(repr(t) for t in sorted(values[failed].unique()))} "
                             "read as missing (the other values are numbers)")
            key = key_for(col)
            numeric[key], names[key] = numbers.to_numpy(dtype=np.float32), col
            if numbers.isna().any():
                missing.add(key)
            continue
        if present.sum() and values[present].str.match(DATE).mean() >= NUMERIC_SHARE:
            dates = parse_dates(values.where(present))
            parts = {"days": (dates - pd.Timestamp("1970-01-01")).dt.days, "month": dates.dt.month,
                     "weekday": dates.dt.day_of_week}
            for part, series in parts.items():
                key = key_for(f"{col}_{part}")
                numeric[key], names[key] = series.to_numpy(dtype=np.float32), f"{col} ({part})"
                if series.isna().any():
                    missing.add(key)
            notes.append(f"column {col} holds dates: the model sees days since 1970, month and weekday")
            continue
        key = key_for(col)
        categorical[key], names[key] = values.fillna("").to_numpy(dtype=object), col
        if not present.all():
            missing.add(key)

    def part(rows: slice) -> TableInputs:
        return TableInputs({k: v[rows] for k, v in numeric.items()}, {k: v[rows] for k, v in categorical.items()},
                           names, missing)

    return part(slice(0, n_train)), part(slice(n_train, None)), notes


def parse_dates(values: pd.Series) -> pd.Series:
    """Dates and times as naive UTC timestamps (NaT where a value is none): day first when the
    column writes it so, offsets converted, a column that cannot be read all NaT."""
    import warnings

    text = values.astype("string")
    with warnings.catch_warnings():  # "could not infer format": each value is then parsed alone, as wanted
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(text, errors="coerce", format="mixed", utc=True,
                                    dayfirst=_day_first(text.dropna().astype(str)))
        except (ValueError, TypeError, OverflowError):
            return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    return parsed.dt.tz_localize(None)


def _day_first(values: pd.Series) -> bool:
    """True when dates are written day first (a first number above 12 somewhere)."""
    first = values.str.extract(r"^\s*(\d{1,2})[-/.]\d{1,2}[-/.]\d{2,4}")[0].dropna().astype(int)
    return bool(len(first) and first.max() > 12)
