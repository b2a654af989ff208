"""Multilabel: any number of labels per row, one sigmoid output per label.

Targets are several 0/1 columns or one column of space-separated labels. Each label gets
its own decision threshold, chosen on OOF predictions to maximise the competition metric
(cross-fitted per fold for the reported score). Submissions hold the label list, 0/1
indicator columns, or probability columns (when the metric needs scores or
sample_submission holds fractions).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from comp.errors import DataError
from comp.tasks import temperature
from comp.tasks.base import (Setting, TargetSummary, Task, TaskSource, check_probabilities, first_row, head_kernel,
                             is_fractional, is_text, plain_fit, safe_name)

LIST, INDICATORS, PROBABILITIES = "list", "indicators", "probabilities"
GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)  # candidate thresholds
PASSES = 2  # coordinate-ascent passes over the labels


class Multilabel(Task):
    kind = "multilabel"
    settings = {"labels": Setting(lambda v: isinstance(v, list) and bool(v) and all(is_text(x) for x in v),
                                  "a list of labels", lambda v: [str(x) for x in v])}  # all labels, unseen ones too
    default_metric = "f1_micro"
    report_metrics = ("f1_micro", "f1_macro", "roc_auc", "exact_match")
    progress_metric = "label_accuracy"
    losses = ("auto", "binary_crossentropy")

    def __init__(self, source: TaskSource):
        super().__init__(source)
        targets = source.train_targets
        self.columns = targets.shape[1] > 1
        declared = source.settings.get("labels")
        if self.columns:
            for col in targets.columns:
                bad = ~targets[col].isin(["0", "1"])
                if bad.any():
                    raise DataError(f"train.csv row {first_row(bad)}: {col}={targets[col][bad].iloc[0]!r}; "
                                    "multilabel indicator columns hold 0 or 1")
            labels = tuple(targets.columns)
        else:
            seen = sorted({t for v in targets.iloc[:, 0].fillna("") for t in v.split()})
            labels = tuple(str(label) for label in declared) if declared else tuple(seen)
            unknown = set(seen) - set(labels)
            if unknown:
                col = targets.columns[0]
                bad = targets[col].fillna("").map(lambda v: bool(set(v.split()) & unknown))
                raise DataError(f"train.csv row {first_row(bad)}: {col} names label "
                                f"{sorted(set(targets[col][bad].iloc[0].split()) & unknown)[0]!r}, which is not "
                                f"among the labels comp.yaml declares ({', '.join(labels)})")
            col = targets.columns[0]
            sample_col = source.sample[col] if col in source.sample else None
            if sample_col is not None and sample_col.nunique() > 1:
                shown = {t for v in sample_col.fillna("") for t in v.split()}
                strange = shown - set(labels)
                if strange and not is_fractional(sample_col):
                    bad = sample_col.fillna("").map(lambda v: bool(set(v.split()) & strange))
                    raise DataError(f"sample_submission.csv row {first_row(bad)}: {col} names label "
                                    f"{sorted(set(sample_col[bad].iloc[0].split()) & strange)[0]!r}, which never "
                                    "occurs in train.csv; declare every label in comp.yaml (labels: [...]) "
                                    "or fix the file")
        if len(labels) < 1:
            raise DataError(f"train.csv column '{targets.columns[0]}': no labels found; a multilabel target is "
                            "a space-separated list of labels")
        self.labels = labels
        y = self.encode(targets)
        self.priors = tuple(float(p) for p in y.mean(axis=0))
        self._fractional = self.columns and any(is_fractional(source.sample[c]) for c in self.submission_cols)
        self.format = LIST

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    # -- metric and submission format -----------------------------------------------------------
    def probability_evidence(self) -> str | None:
        return "sample_submission holds probabilities" if self._fractional else None

    def suggested_metric(self) -> str | None:
        return "roc_auc" if self._fractional else None

    def after_metric(self) -> None:
        if not self.columns:
            self.format = LIST
        elif self._fractional or self.metric.needs == "scores":
            self.format = PROBABILITIES
        else:
            self.format = INDICATORS

    def submission_format(self) -> str:
        return {LIST: f"column {self.target} holds the space-separated predicted labels",
                INDICATORS: f"one 0/1 column per label ({self.num_labels})",
                PROBABILITIES: f"one probability column per label ({self.num_labels})"}[self.format]

    # -- targets --------------------------------------------------------------------------------
    def encode(self, targets: pd.DataFrame) -> np.ndarray:
        if self.columns:
            return targets[list(self.labels)].astype(int).to_numpy(dtype=np.float32)
        index = {label: i for i, label in enumerate(self.labels)}
        out = np.zeros((len(targets), len(self.labels)), dtype=np.float32)
        for row, value in enumerate(targets.iloc[:, 0].fillna("")):
            for label in value.split():
                out[row, index[label]] = 1
        return out

    def strata(self, targets: pd.DataFrame) -> np.ndarray:
        return self.encode(targets).astype(int)

    def summary(self, targets, sample) -> TargetSummary:
        y = self.encode(targets)
        counts = pd.Series(y.sum(axis=0).astype(int), index=list(self.labels))
        report = {"target": {"label_counts": {k: int(v) for k, v in counts.items()},
                             "labels_per_row": round(float(y.sum(axis=1).mean()), 3)}}
        problems = []
        absent = counts[counts == 0]
        if len(absent):
            problems.append(f"labels that never occur in train.csv: {', '.join(absent.index[:10])}")
        groups = pd.Series([self.labels[int(np.argmax(r))] if r.any() else "(none)" for r in y])
        return TargetSummary(report, problems, counts, groups)

    def truth_strings(self, targets: pd.DataFrame) -> list[str]:
        return [" ".join(self.labels[j] for j in np.flatnonzero(r)) for r in self.encode(targets)]

    # -- the model ------------------------------------------------------------------------------
    def for_fold(self, y: np.ndarray) -> "Multilabel":
        import copy

        fold = copy.copy(self)
        fold.priors = tuple(float(p) for p in np.asarray(y, dtype=np.float64).mean(axis=0))
        return fold

    def head(self, features):
        """Sigmoid outputs whose bias starts at the logit of each label's frequency."""
        import keras

        p = np.clip(np.asarray(self.priors, dtype=np.float64), 1e-4, 1 - 1e-4)
        return keras.layers.Dense(
            self.num_labels, activation="sigmoid", kernel_initializer=head_kernel(),
            bias_initializer=keras.initializers.Constant(np.log(p / (1 - p)).astype("float32")),
            dtype="float32", name=f"head_{safe_name(self.target)}")(features)

    def loss(self, name: str = "auto", label_smoothing: float = 0.0):
        import keras

        return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing, reduction="none")

    def batch_metric(self, y, outputs):
        import tensorflow as tf

        right = tf.equal(tf.cast(outputs >= 0.5, tf.float32), tf.cast(y, tf.float32))
        return tf.reduce_mean(tf.cast(right, tf.float32), axis=-1)

    def chance(self) -> float:
        return float(np.mean([max(p, 1 - p) for p in self.priors]))

    def prior_outputs(self, rows: int) -> np.ndarray:
        return np.tile(np.asarray(self.priors, dtype=np.float32), (rows, 1))

    def head_losses(self, y, outputs) -> dict[str, float]:
        p = np.clip(np.asarray(outputs, dtype=np.float64), 1e-7, 1 - 1e-7)
        return {"loss": float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())}

    # -- predictions ----------------------------------------------------------------------------
    def _thresholds(self, decoding) -> np.ndarray:
        if decoding and "thresholds" in decoding:
            return np.asarray([decoding["thresholds"][label] for label in self.labels])
        return np.full(self.num_labels, 0.5)

    def metric_inputs(self, y, predictions, decoding, needs):
        predictions = np.asarray(predictions)
        if needs == "scores":
            return y.astype(int), calibrated(predictions, decoding)
        return y.astype(int), (predictions >= self._thresholds(decoding)).astype(int)

    def fit_decoding(self, y, predictions, fold_of) -> tuple[dict, float]:
        """Per-label thresholds by coordinate ascent on the metric; the score is cross-fitted.
        A metric that scores the probabilities (log loss) gets one temperature for every
        label's instead, kept when its cross-fitted score pays (comp.tasks.temperature)."""
        used = fold_of >= 0
        if self.metric.needs == "scores":
            return temperature.fit_decoding(self, y[used], np.asarray(predictions)[used], fold_of[used])
        honest = self.honest_scores(y[used], predictions[used], fold_of[used])[self.metric_name]
        thresholds = self._search(y[used], predictions[used])
        return {"thresholds": {label: float(t) for label, t in zip(self.labels, thresholds)}}, honest

    def fold_decodings(self, y, predictions, fold_of) -> dict[int, dict]:
        """Each fold's thresholds (or temperature), searched on the other folds' rows."""
        used = fold_of >= 0
        if self.metric.needs == "scores":
            return temperature.fold_decodings(self, y[used], np.asarray(predictions)[used], fold_of[used])
        return {int(k): {"thresholds": dict(zip(self.labels, map(float, self._search(y[used & (fold_of != k)],
                                                                                  predictions[used & (fold_of != k)]))))}
                for k in np.unique(fold_of[used])}

    def _search(self, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        objective = self.objective
        t = np.full(self.num_labels, 0.5)
        truth = y.astype(int)
        for _ in range(PASSES):
            for j in range(self.num_labels):
                best, best_value = t[j], None
                for candidate in GRID:
                    t[j] = candidate
                    value = self.metric.fn(truth, (p >= t).astype(int))
                    if objective.better(value, best_value, margin=1e-12):
                        best, best_value = candidate, value
                t[j] = best
        return t

    def decode(self, predictions, decoding=None) -> list[str]:
        chosen = np.asarray(predictions) >= self._thresholds(decoding)
        return [" ".join(self.labels[j] for j in np.flatnonzero(r)) for r in chosen]

    def row_losses(self, y, predictions):
        p = np.clip(np.asarray(predictions, dtype=np.float64), 1e-7, 1 - 1e-7)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p)).sum(1)

    # -- submission -----------------------------------------------------------------------------
    def submission(self, sample, predictions, decoding) -> pd.DataFrame:
        frame = sample.copy()
        predictions = np.asarray(predictions, dtype=np.float64)
        if self.format == LIST:
            frame[self.target] = self.decode(predictions, decoding)
        elif self.format == PROBABILITIES:
            predictions = calibrated(predictions, decoding)
            for j, label in enumerate(self.labels):
                frame[label] = predictions[:, j]
        else:
            chosen = predictions >= self._thresholds(decoding)
            for j, label in enumerate(self.labels):
                frame[label] = chosen[:, j].astype(int).astype(str)
        return frame

    def check_submission_values(self, frame: pd.DataFrame) -> None:
        if self.format == PROBABILITIES:
            check_probabilities(frame, self.labels)
        elif self.format == INDICATORS:
            for label in self.labels:
                bad = ~frame[label].isin(["0", "1"])
                if bad.any():
                    raise DataError(f"submission row {first_row(bad)}: {label} must be 0 or 1")
        else:
            known = set(self.labels)
            bad = frame[self.target].fillna("").map(lambda v: not set(v.split()) <= known)
            if bad.any():
                raise DataError(f"submission row {first_row(bad)}: {self.target} names a label not seen in train.csv")

    # -- non-Keras models -----------------------------------------------------------------------
    def fit_estimator(self, make, x, y, fit=None):
        """One estimator per label (a constant label gets its constant), each with an equal
        share of the time left."""
        fit = fit or plain_fit
        fitted = []
        for j in range(self.num_labels):
            column = y[:, j].astype(int)
            if column.min() == column.max():
                fitted.append(float(column[0]))
            else:
                fitted.append(fit(make(), x, column, 1.0 / (self.num_labels - j)))
        return fitted

    def estimator_outputs(self, fitted, x) -> np.ndarray:
        out = np.zeros((len(x), self.num_labels), dtype=np.float32)
        for j, estimator in enumerate(fitted):
            out[:, j] = estimator if isinstance(estimator, float) else estimator.predict_proba(x)[:, 1]
        return out


def calibrated(probabilities: np.ndarray, decoding: dict | None) -> np.ndarray:
    """Each label's probability at the decoding's temperature (sigmoid of logit p / T)."""
    if not (decoding or {}).get(temperature.KEY):
        return probabilities
    from scipy.special import expit, logit

    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-15, 1 - 1e-15)
    return expit(temperature.softened(logit(p), decoding))
