"""Per-feature summary and duplicate rows for tabular competitions."""
from __future__ import annotations

import pandas as pd


def feature_summary(train: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """dtype (numeric/categorical), missing rate, distinct values, constant flag, range or top value."""
    rows = []
    for col in features:
        values = train[col]
        numbers = pd.to_numeric(values, errors="coerce")
        numeric = bool(numbers[values.notna()].notna().all())
        distinct = int(values.nunique(dropna=True))
        rows.append({
            "feature": col,
            "dtype": "numeric" if numeric else "categorical",
            "missing_rate": round(float(values.isna().mean()), 4),
            "distinct": distinct,
            "constant": distinct <= 1,
            "summary": (f"min {numbers.min():.4g}, mean {numbers.mean():.4g}, max {numbers.max():.4g}"
                        if numeric and distinct else f"top {values.mode().iloc[0]!r}" if distinct else "all missing"),
        })
    return pd.DataFrame(rows)


def duplicate_row_digests(frame: pd.DataFrame, features: list[str]) -> list[str]:
    """A hash of each row's feature values: equal hashes are exact duplicate rows."""
    return [str(h) for h in pd.util.hash_pandas_object(frame[features].fillna("<NA>"), index=False)]
