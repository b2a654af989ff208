"""Which way a score is better: the one object every comparison of scores goes through.

A competition metric is higher-is-better (accuracy, ROC-AUC) or lower-is-better (RMSE, log
loss). Epoch selection, early stopping, snapshots, reduce-on-plateau, blend selection, the
search stages' keep gate and the choice of the submitted stage all compare scores; they ask
an ``Objective`` instead of each writing ``score > best if higher else score < best``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class Objective:
    higher_is_better: bool = True

    @property
    def sign(self) -> float:
        """+1 or -1: ``sign * score`` is larger for a better score."""
        return 1.0 if self.higher_is_better else -1.0

    @property
    def direction(self) -> str:
        """keras-tuner's name for it: ``max`` or ``min``."""
        return "max" if self.higher_is_better else "min"

    def better(self, score: float, than: float | None, margin: float = 0.0) -> bool:
        """``score`` is better than ``than`` by more than ``margin`` (anything beats None)."""
        if than is None:
            return True
        return score > than + margin if self.higher_is_better else score < than - margin

    def gain(self, score: Any, reference: Any) -> Any:
        """How much better ``score`` is than ``reference`` (negative: worse); arrays work too."""
        return self.sign * (np.asarray(score) - np.asarray(reference)) if isinstance(score, (list, np.ndarray)) \
            else self.sign * (score - reference)

    def best_index(self, scores: Sequence[float]) -> int:
        """Position of the best score; ties go to the first."""
        return int(np.argmax(self.sign * np.asarray(scores, dtype=np.float64)))

    def best(self, items: Iterable[T], key: Callable[[T], float] = lambda item: item) -> T:
        """The item with the best ``key``; ties go to the first."""
        items = list(items)
        return items[self.best_index([key(item) for item in items])]

    def ranked(self, items: Iterable[T], key: Callable[[T], float] = lambda item: item) -> list[T]:
        """``items`` best first (stable: ties keep their order)."""
        return sorted(items, key=lambda item: -self.sign * key(item))
