"""Regression: one numeric target, one linear output.

The model learns the target standardised (zero mean, unit variance; after log1p when the
metric is RMSLE), so its last-layer bias starts at the target mean (docs/recipe.md 3) and the
loss has the same scale on every competition. Predictions are turned back into the
target's own units before they are scored, averaged or submitted.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from comp.errors import ConfigError, DataError
from comp.tasks.base import (ErrorAnalysis, TargetSummary, Task, TaskSource, first_row, head_kernel, plain_fit,
                             safe_name)

BINS = 10  # quantile bins of the target for stratified folds


class Regression(Task):
    kind = "regression"
    default_metric = "rmse"
    report_metrics = ("rmse", "mae", "r2")
    progress_metric = "mae"
    progress_is_accuracy = False
    losses = ("auto", "mse", "mae", "huber")
    smoothable = False
    estimator_role = "regressor"

    def __init__(self, source: TaskSource):
        super().__init__(source)
        column = self.targets[0]
        values = pd.to_numeric(source.train_targets[column], errors="coerce")
        if values.isna().any():
            row = first_row(values.isna())
            raise DataError(f"train.csv row {row}: {column}={source.train_targets[column].iloc[row - 2]!r} "
                            "is not a number; a regression target must be numeric")
        if not np.isfinite(values).all():
            raise DataError(f"train.csv row {first_row(~np.isfinite(values))}: {column} is infinite")
        self.values = values.to_numpy(dtype=np.float64)
        self.log = False
        self._set_scale()

    def _set_scale(self) -> None:
        v = np.log1p(self.values) if self.log else self.values
        self.mean = float(v.mean())
        self.std = float(v.std()) or 1.0

    def after_metric(self) -> None:
        if self.metric_name == "rmsle":
            if (self.values < 0).any():
                raise ConfigError(f"metric=rmsle needs targets >= 0, but train.csv row {first_row(self.values < 0)} "
                                  f"has {self.target}={self.values[self.values < 0][0]:g}; use metric=rmse")
            self.log = True  # learn log1p(target): RMSLE is RMSE there
        self._set_scale()

    def submission_format(self) -> str:
        return f"column {self.target} holds the predicted value"

    # -- targets --------------------------------------------------------------------------------
    def _transform(self, values: np.ndarray) -> np.ndarray:
        return ((np.log1p(values) if self.log else values) - self.mean) / self.std

    def _untransform(self, z: np.ndarray) -> np.ndarray:
        v = np.asarray(z, dtype=np.float64) * self.std + self.mean
        return np.expm1(v) if self.log else v

    def encode(self, targets: pd.DataFrame) -> np.ndarray:
        values = pd.to_numeric(targets[self.target]).to_numpy(dtype=np.float64)
        return self._transform(values).astype(np.float32).reshape(-1, 1)

    def strata(self, targets: pd.DataFrame) -> np.ndarray:
        """Quantile bin of the target, so every fold sees the whole range."""
        values = pd.to_numeric(targets[self.target])
        return pd.qcut(values.rank(method="first"), q=min(BINS, len(values)), labels=False).to_numpy()

    def summary(self, targets, sample) -> TargetSummary:
        values = pd.to_numeric(targets[self.target])
        quantiles = values.quantile([0, 0.05, 0.25, 0.5, 0.75, 0.95, 1]).round(4)
        report = {"target": {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4),
                             "quantiles": {f"{q:.2f}": float(v) for q, v in quantiles.items()}}}
        problems = []
        spread = float(quantiles[0.95] - quantiles[0.05])
        if spread > 0 and float(quantiles[1.0] - quantiles[0.0]) > 20 * spread:
            problems.append(f"target {self.target} has extreme values ({quantiles[0.0]:g}..{quantiles[1.0]:g}, "
                            f"90% within {quantiles[0.05]:g}..{quantiles[0.95]:g}); consider metric=rmsle "
                            "or a Huber loss (train.loss=huber)")
        bins = pd.qcut(values.rank(method="first"), q=min(5, len(values)), labels=False)
        return TargetSummary(report, problems, None, bins.map(lambda b: f"q{int(b) + 1}"))

    def truth_strings(self, targets: pd.DataFrame) -> list[str]:
        return targets[self.target].tolist()

    # -- the model ------------------------------------------------------------------------------
    offset = 0.0  # the fold's training rows' mean, standardised (``for_fold``); 0: all rows'

    def for_fold(self, y: np.ndarray) -> "Regression":
        import copy

        fold = copy.copy(self)
        fold.offset = float(np.mean(y))
        return fold

    def head(self, features):
        """A linear output starting at the target mean (of the fold's training rows, in the
        standardised units the model learns) with a small kernel (``head_kernel``)."""
        import keras

        return keras.layers.Dense(1, dtype="float32", name=f"head_{safe_name(self.target)}",
                                  kernel_initializer=head_kernel(),
                                  bias_initializer=keras.initializers.Constant(self.offset))(features)

    def loss(self, name: str = "auto", label_smoothing: float = 0.0):
        import keras

        if name == "auto":
            name = "mae" if self.metric_name == "mae" else "mse"
        if name == "mae":
            return keras.losses.MeanAbsoluteError(reduction="none")
        if name == "huber":
            return keras.losses.Huber(delta=1.0, reduction="none")  # one standard deviation
        return keras.losses.MeanSquaredError(reduction="none")

    def batch_metric(self, y, outputs):
        import tensorflow as tf

        # In the target's units only when there is no log transform (then: standardised units).
        scale = 1.0 if self.log else self.std
        return tf.reduce_mean(tf.abs(tf.cast(outputs, tf.float32) - tf.cast(y, tf.float32)), axis=-1) * scale

    def prior_outputs(self, rows: int) -> np.ndarray:
        return np.zeros((rows, 1), dtype=np.float32)

    # -- predictions ----------------------------------------------------------------------------
    def predictions(self, outputs) -> np.ndarray:
        return self._untransform(np.asarray(outputs).reshape(-1, 1)).astype(np.float32)

    def metric_inputs(self, y, predictions, decoding, needs):
        return self._untransform(np.asarray(y).reshape(-1)), np.asarray(predictions, dtype=np.float64).reshape(-1)

    def decode(self, predictions, decoding=None) -> list[str]:
        return [repr(float(v)) for v in np.asarray(predictions, dtype=np.float64).reshape(-1)]

    def error_analysis(self, y, predictions, rows, decoding, truth, limit) -> ErrorAnalysis:
        """Residuals against predictions, and the rows with the largest residuals."""
        values, pred = (np.asarray(v).reshape(-1) for v in self.metric_inputs(y[rows], predictions[rows], decoding,
                                                                             "values"))

        def draw(fig):
            ax = fig.add_subplot(111)
            ax.scatter(pred, values - pred, s=6, alpha=0.5)
            ax.axhline(0, color="k", lw=0.8)
            ax.set_xlabel("OOF prediction")
            ax.set_ylabel("truth - prediction")
            ax.set_title("residuals (OOF)")

        order = rows[np.argsort(-np.abs(values - pred))][:limit]
        captions = [f"residual {(values - pred)[np.searchsorted(rows, i)]:.3g}" for i in order]
        return ErrorAnalysis(order, captions, draw, "residual plot")

    # -- submission -----------------------------------------------------------------------------
    def submission(self, sample, predictions, decoding) -> pd.DataFrame:
        frame = sample.copy()
        frame[self.target] = self.decode(predictions)
        return frame

    def check_submission_format(self, sample: pd.DataFrame) -> None:
        values = pd.to_numeric(sample[self.target], errors="coerce")
        if values.isna().any():
            row = first_row(values.isna())
            raise DataError(f"sample_submission.csv row {row}: {self.target}={sample[self.target].iloc[row - 2]!r} "
                            "is not a number, which task regression cannot produce; set task in comp.yaml")

    def check_submission_values(self, frame: pd.DataFrame) -> None:
        values = pd.to_numeric(frame[self.target], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.fillna(0))
        if bad.any():
            raise DataError(f"submission row {first_row(bad)}: {self.target} is not a finite number")

    # -- non-Keras models -----------------------------------------------------------------------
    def fit_estimator(self, make, x, y, fit=None):
        fit = fit or plain_fit
        return fit(make(), x, np.asarray(y).reshape(-1), 1.0)

    def estimator_outputs(self, fitted, x) -> np.ndarray:
        return np.asarray(fitted.predict(x), dtype=np.float32).reshape(-1, 1)
