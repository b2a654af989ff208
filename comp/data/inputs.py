"""Model inputs of a competition, images or table columns, behind one small interface.

``take(rows)`` gives the rows as arrays; ``rows(rows)`` gives what training and prediction
stream through (the same arrays, or a lazy view of images kept on disk, gathered batch by
batch so a fold is never copied); ``spec(rows)`` describes them to a model plugin, with statistics fit on those rows only (a fold's training rows), so no
validation row leaks into normalisation or vocabularies.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import pandas as pd

from comp.api import IMAGE, TABULAR, Column, InputSpec
from comp.data.rows import MemoryRows

MAX_VOCABULARY = 1000  # most frequent categories kept per column (the rest share one OOV slot)
MAX_TREE_CATEGORIES = 250  # scikit-learn's histogram GBMs take at most 255 categories per column


class Inputs(ABC):
    modality: str

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def take(self, rows: np.ndarray) -> Any:
        """What a Keras model built from ``spec`` takes for these rows."""

    def rows(self, rows: np.ndarray) -> Any:
        """``take(rows)``, or a lazy view of them (``streamed``: images, in memory or on disk)."""
        return self.take(rows)

    @abstractmethod
    def spec(self, rows: np.ndarray | None = None) -> InputSpec:
        """The input description, statistics fit on ``rows`` (default: all)."""

    def blank(self, x: Any) -> Any:
        """``x`` with its content removed, for the input-independent baseline (docs/recipe.md 3)."""
        return np.zeros_like(x)

    def frame(self, rows: np.ndarray, spec: InputSpec) -> pd.DataFrame:
        """The rows as a DataFrame for non-Keras models."""
        raise NotImplementedError(f"{self.modality} inputs have no table form")


class ImageInputs(Inputs):
    """uint8 images (n, height, width, channels), in memory or ``DiskRows`` read on demand."""

    modality = IMAGE

    def __init__(self, pixels):
        self.pixels = pixels
        # In memory: one view of the whole array, so that its host tensor serves every fold.
        self._rows = pixels if getattr(pixels, "streamed", False) else MemoryRows(pixels)

    def __len__(self) -> int:
        return len(self.pixels)

    def take(self, rows):
        return np.asarray(self.pixels[rows])

    def rows(self, rows):
        return self._rows.subset(rows)

    def spec(self, rows=None) -> InputSpec:
        return InputSpec(tuple(int(s) for s in self.pixels.shape[1:]), IMAGE)

    def frame(self, rows, spec) -> np.ndarray:
        """The images themselves (uint8), as a non-Keras model for images takes them."""
        return self.take(rows)


def _robust_scale(values: np.ndarray) -> tuple[float, float]:
    """(median, spread) of a column's finite values: the spread is the middle half's width,
    else half the range (a column mostly of one value), else 1 -- RealMLP's robust scaling."""
    if not len(values):
        return 0.0, 1.0
    low, median, high = np.quantile(values, [0.25, 0.5, 0.75])
    spread = high - low or (values.max() - values.min()) / 2 or 1.0
    return float(median), float(spread)


class TableInputs(Inputs):
    """Typed feature columns: numbers as float32 (NaN = missing), categories as strings
    ("" = missing). Built by ``comp.data.tabular.read_table``."""

    modality = TABULAR

    def __init__(self, numeric: dict[str, np.ndarray], categorical: dict[str, np.ndarray],
                 names: dict[str, str], missing: set[str]):
        self.numeric, self.categorical, self.names, self.missing = numeric, categorical, names, missing

    def __len__(self) -> int:
        first = next(iter({**self.numeric, **self.categorical}.values()))
        return len(first)

    def keys(self) -> list[str]:
        return list(self.numeric) + list(self.categorical)

    def take(self, rows):
        out = {k: v[rows].reshape(-1, 1) for k, v in self.numeric.items()}
        out.update({k: v[rows].reshape(-1, 1) for k, v in self.categorical.items()})
        return out

    def blank(self, x):
        return {k: (np.full_like(v, np.nan) if k in self.numeric else np.full_like(v, "")) for k, v in x.items()}

    def spec(self, rows=None) -> InputSpec:
        rows = np.arange(len(self)) if rows is None else rows
        columns = []
        for key, values in self.numeric.items():
            v = values[rows].astype(np.float64)
            finite = v[np.isfinite(v)]
            mean = float(finite.mean()) if len(finite) else 0.0
            variance = float(finite.var()) if len(finite) > 1 else 1.0
            median, spread = _robust_scale(finite)
            columns.append(Column(self.names[key], key, "numeric", mean, variance or 1.0, key in self.missing,
                                  median=median, spread=spread))
        for key, values in self.categorical.items():
            counts = pd.Series(values[rows]).value_counts()
            vocabulary = tuple(str(v) for v in counts.index[:MAX_VOCABULARY])
            columns.append(Column(self.names[key], key, "categorical", missing=key in self.missing,
                                  vocabulary=vocabulary))
        return InputSpec((len(columns),), TABULAR, tuple(columns))

    def frame(self, rows, spec) -> pd.DataFrame:
        """Numbers as float, categories as pandas ``category`` over the fit rows' most
        frequent values (unknown or rare ones become missing), for tree models."""
        data = {}
        for column in spec.columns:
            if column.kind == "numeric":
                data[column.key] = self.numeric[column.key][rows].astype(np.float64)
            else:
                kept = [v for v in column.vocabulary if v != ""][:MAX_TREE_CATEGORIES]
                # A hashed lookup (-1: not kept, so missing): np.isin on strings took 0.2 s a
                # column of 200,000 rows, 30 s of a 262,000-row table's baseline.
                codes = pd.Index(kept, dtype=object).get_indexer(self.categorical[column.key][rows])
                data[column.key] = pd.Categorical.from_codes(codes, categories=kept)
        return pd.DataFrame(data)
