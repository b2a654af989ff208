"""Task kinds that comp can read, inspect and split but not yet train.

Each parses its targets (read as strings), checks what a submission must hold, and gives
the stratification key `split` uses. Training stages refuse them with one clear line.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from comp.errors import DataError


@dataclass(frozen=True)
class _ReadOnlyTask:
    targets: tuple[str, ...]
    metric: str
    trainable = False

    @property
    def target(self) -> str:
        return self.targets[0]


@dataclass(frozen=True)
class Multilabel(_ReadOnlyTask):
    """Several 0/1 columns, or one column holding a space-separated label list."""

    labels: tuple[str, ...] = ()
    kind: str = "multilabel"
    default_metric = "f1_micro"

    @classmethod
    def from_targets(cls, targets: pd.DataFrame, metric: str | None) -> "Multilabel":
        if targets.shape[1] > 1:
            for col in targets.columns:
                bad = ~targets[col].isin(["0", "1"])
                if bad.any():
                    row = int(bad.to_numpy().nonzero()[0][0])
                    raise DataError(f"train.csv row {row + 2}: {col}={targets[col].iloc[row]!r}; "
                                    "multilabel indicator columns hold 0 or 1")
            labels = tuple(targets.columns)
        else:
            labels = tuple(sorted({t for v in targets.iloc[:, 0].fillna("") for t in v.split()}))
        return cls(tuple(targets.columns), metric or cls.default_metric, labels)

    def indicators(self, targets: pd.DataFrame) -> np.ndarray:
        if targets.shape[1] > 1:
            return targets.astype(int).to_numpy()
        index = {label: i for i, label in enumerate(self.labels)}
        out = np.zeros((len(targets), len(self.labels)), dtype=int)
        for row, value in enumerate(targets.iloc[:, 0].fillna("")):
            for label in value.split():
                out[row, index[label]] = 1
        return out

    def stratify_key(self, targets: pd.DataFrame) -> np.ndarray:
        return self.indicators(targets)

    def check_submission_format(self, sample: pd.DataFrame) -> None:
        return None  # lists and indicator columns are both producible


@dataclass(frozen=True)
class Regression(_ReadOnlyTask):
    """One numeric target."""

    kind: str = "regression"
    default_metric = "rmse"

    @classmethod
    def from_targets(cls, targets: pd.DataFrame, metric: str | None) -> "Regression":
        values = pd.to_numeric(targets.iloc[:, 0], errors="coerce")
        if values.isna().any():
            row = int(values.isna().to_numpy().nonzero()[0][0])
            raise DataError(f"train.csv row {row + 2}: {targets.columns[0]}={targets.iloc[row, 0]!r} "
                            "is not a number; a regression target must be numeric")
        return cls(tuple(targets.columns), metric or cls.default_metric)

    def stratify_key(self, targets: pd.DataFrame, bins: int = 10) -> np.ndarray:
        """Quantile bin of the target, so every fold sees the whole range."""
        values = pd.to_numeric(targets.iloc[:, 0])
        return pd.qcut(values.rank(method="first"), q=min(bins, len(values)), labels=False).to_numpy()

    def check_submission_format(self, sample: pd.DataFrame) -> None:
        col = self.target
        bad = pd.to_numeric(sample[col], errors="coerce").isna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise DataError(f"sample_submission.csv row {row + 2}: {col}={sample[col].iloc[row]!r} is not a "
                            "number, which task regression cannot produce; set task in comp.yaml")


@dataclass(frozen=True)
class Sequence(_ReadOnlyTask):
    """A character string of variable length, e.g. a street number '407'."""

    alphabet: tuple[str, ...] = ()
    max_length: int = 0
    kind: str = "sequence"
    default_metric = "accuracy"

    @classmethod
    def from_targets(cls, targets: pd.DataFrame, metric: str | None) -> "Sequence":
        values = targets.iloc[:, 0].fillna("")
        empty = values == ""
        if empty.any():
            row = int(empty.to_numpy().nonzero()[0][0])
            raise DataError(f"train.csv row {row + 2}: empty sequence in {targets.columns[0]}")
        alphabet = tuple(sorted({ch for v in values for ch in v}))
        return cls(tuple(targets.columns), metric or cls.default_metric, alphabet, int(values.str.len().max()))

    def stratify_key(self, targets: pd.DataFrame) -> np.ndarray:
        """Sequence length: folds get the same mix of short and long strings."""
        return targets.iloc[:, 0].str.len().to_numpy()

    def check_submission_format(self, sample: pd.DataFrame) -> None:
        return None
