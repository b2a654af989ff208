"""Single-label classification: one target column, one softmax head."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from comp.errors import ConfigError, DataError


@dataclass(frozen=True)
class Metric:
    fn: Callable[[np.ndarray, np.ndarray], float]  # (int labels, probabilities) -> score
    higher_is_better: bool
    keras_name: str  # what early stopping monitors (prefixed with val_)


METRICS = {
    "accuracy": Metric(lambda y, p: skm.accuracy_score(y, p.argmax(1)), True, "accuracy"),
    "logloss": Metric(
        lambda y, p: skm.log_loss(y, np.clip(p, 1e-15, 1), labels=np.arange(p.shape[1])),
        False,
        "loss",
    ),
    "f1_macro": Metric(
        lambda y, p: skm.f1_score(y, p.argmax(1), average="macro"), True, "accuracy"
    ),
}


@dataclass(frozen=True)
class Classification:
    """Labels are kept as the competition's strings; ``classes`` fixes their order."""

    target: str
    classes: tuple[str, ...]
    priors: tuple[float, ...]
    metric: str
    kind: str = "classification"
    default_metric = "accuracy"
    trainable = True

    @classmethod
    def from_targets(cls, targets: pd.DataFrame, metric: str | None) -> "Classification":
        column = targets.columns[0]
        labels = targets[column]
        if labels.isna().any():
            row = int(np.flatnonzero(labels.isna().to_numpy())[0])
            raise DataError(f"train.csv row {row + 2}: empty label in column '{column}'; fill or drop it")
        counts = labels.value_counts().sort_index()
        if len(counts) < 2:
            raise DataError(
                f"train.csv column '{column}' has a single class ({counts.index[0]!r}); "
                "a classifier needs at least two"
            )
        metric = metric or cls.default_metric
        if metric not in METRICS:
            raise ConfigError(f"metric={metric!r} is not known for classification; use one of {', '.join(METRICS)}")
        priors = (counts / counts.sum()).to_numpy()
        return cls(column, tuple(counts.index), tuple(float(p) for p in priors), metric)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def encode(self, labels: pd.Series) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        return labels.map(index).to_numpy(dtype=np.int32)

    def decode(self, probabilities: np.ndarray) -> list[str]:
        return [self.classes[i] for i in probabilities.argmax(axis=1)]

    def score(self, y: np.ndarray, probabilities: np.ndarray) -> float:
        return float(METRICS[self.metric].fn(y, probabilities))

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric].higher_is_better

    @property
    def monitor(self) -> tuple[str, str]:
        """(Keras log key, mode) for early stopping on the competition metric."""
        m = METRICS[self.metric]
        return f"val_{m.keras_name}", "max" if m.keras_name != "loss" else "min"

    def head(self, features):
        """Softmax layer whose bias starts at log class priors (RECIPE.md 3: initial loss)."""
        import keras

        bias = np.log(np.asarray(self.priors, dtype="float32"))
        return keras.layers.Dense(
            self.num_classes,
            activation="softmax",
            bias_initializer=keras.initializers.Constant(bias),
            dtype="float32",  # softmax in float32 even under mixed precision
            name=f"head_{_safe(self.target)}",
        )(features)

    def loss(self):
        import keras

        return keras.losses.SparseCategoricalCrossentropy()

    def stratify_key(self, targets: pd.DataFrame) -> np.ndarray:
        return self.encode(targets[self.target])

    def check_submission_format(self, sample: pd.DataFrame) -> None:
        """A single-label classifier writes one label per row: no lists, no empty cells."""
        values = sample[self.target].fillna("")
        bad = values.str.contains(" ") & ~values.isin(self.classes)
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise DataError(
                f"sample_submission.csv row {row + 2}: {self.target}={values.iloc[row]!r} looks like a label "
                "list, which task classification cannot produce; set task: multilabel in comp.yaml"
            )


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)
