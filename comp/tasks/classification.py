"""Single-label classification: one target column, one softmax head.

Submissions hold the label, the probability of the positive class (binary, when the
metric needs probabilities or sample_submission holds them) or one probability column
per class (when sample_submission's columns are the class names).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from comp.errors import DataError
from comp.tasks import temperature
from comp.tasks.base import (ErrorAnalysis, Setting, TargetSummary, Task, TaskSource, check_probabilities, first_row, head_kernel,
                             is_fractional, is_text, safe_name)

# Values whose second member is the positive class, whatever their case.
POSITIVE_PAIRS = ({"0", "1"}, {"false", "true"}, {"no", "yes"}, {"n", "y"}, {"f", "t"},
                  {"negative", "positive"}, {"neg", "pos"})

LABEL, PROBABILITY, CLASS_COLUMNS = "label", "probability", "class_columns"


class Classification(Task):
    """Labels are kept as the competition's strings; ``classes`` fixes their order (the
    positive class last for two classes)."""

    kind = "classification"
    settings = {"positive_class": Setting(is_text, "a class label", str)}  # the class AUC and F1 score
    default_metric = "accuracy"
    report_metrics = ("accuracy", "logloss", "f1_macro", "roc_auc")
    losses = ("auto", "crossentropy")

    def __init__(self, source: TaskSource):
        super().__init__(source)
        column = self.targets[0]
        labels = source.train_targets[column]
        if labels.isna().any():
            raise DataError(f"train.csv row {first_row(labels.isna())}: empty label in column '{column}'; "
                            "fill or drop it")
        counts = labels.value_counts()
        if len(counts) < 2:
            raise DataError(f"train.csv column '{column}' has a single class ({counts.index[0]!r}); "
                            "a classifier needs at least two")
        classes = sorted(counts.index, key=_class_order)
        positive = source.settings.get("positive_class")
        if positive is not None:
            positive = str(positive)
            if positive not in classes or len(classes) != 2:
                raise DataError(f"comp.yaml: positive_class {positive!r} is not one of the two classes "
                                f"({', '.join(classes)})")
        elif len(classes) == 2:
            lowered = {c.lower() for c in classes}
            pair = next((p for p in POSITIVE_PAIRS if p == lowered), None)
            if pair:
                positive = next(c for c in classes if c.lower() == sorted(pair, key=_positive_rank)[1])
        if len(classes) == 2 and positive is not None:
            classes = [c for c in classes if c != positive] + [positive]
        self.classes = tuple(classes)
        self.priors = tuple(float(counts[c] / counts.sum()) for c in self.classes)
        self.format = LABEL
        self._fractional = len(self.submission_cols) == 1 and is_fractional(source.sample[self.submission_cols[0]])
        self._class_columns = (set(self.submission_cols) == set(self.classes)
                               and self.targets[0] not in self.submission_cols)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    # -- metric and submission format -----------------------------------------------------------
    def probability_evidence(self) -> str | None:
        if self._class_columns:
            return "sample_submission has one column per class"
        if self._fractional:
            return "sample_submission holds probabilities"
        return None

    def suggested_metric(self) -> str | None:
        if self.probability_evidence():
            return "roc_auc" if self.num_classes == 2 and not self._class_columns else "logloss"
        return None

    def after_metric(self) -> None:
        wants_scores = self.metric.needs == "scores"
        if self._class_columns:
            self.format = CLASS_COLUMNS
        elif self._fractional or (wants_scores and self.num_classes == 2):
            if self.num_classes != 2:
                raise DataError(f"sample_submission.csv: column '{self.submission_cols[0]}' holds probabilities, "
                                f"but there are {self.num_classes} classes; give sample_submission one column "
                                "per class (named after the classes)")
            self.format = PROBABILITY
        else:
            self.format = LABEL

    def submission_format(self) -> str:
        if self.format == PROBABILITY:
            return (f"column {self.submission_cols[0]} holds P({self.target}={self.classes[1]!r}) "
                    "(set positive_class in comp.yaml to change)")
        if self.format == CLASS_COLUMNS:
            return f"one probability column per class ({len(self.classes)})"
        return f"column {self.target} holds the predicted label"

    # -- targets --------------------------------------------------------------------------------
    def encode(self, targets: pd.DataFrame) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        return targets[self.target].map(index).to_numpy(dtype=np.int32)

    def strata(self, targets: pd.DataFrame) -> np.ndarray:
        return targets[self.target].to_numpy()

    def check_folds(self, targets: pd.DataFrame, folds: int) -> None:
        from comp.tasks import reads_as_characters

        counts = targets[self.target].value_counts()
        if counts.min() < folds:
            rare = int((counts < folds).sum())
            hint = (f"; {rare} of {len(counts)} classes are that rare: if each label is a string read character by "
                    "character (a street number, a code), set task: sequence in comp.yaml"
                    if rare > 1 and reads_as_characters(targets[self.target]) else "")
            raise DataError(f"train.csv: class {counts.idxmin()!r} has {counts.min()} example(s), fewer than "
                            f"split.folds={folds}; lower split.folds or add examples of that class{hint}")

    def summary(self, targets: pd.DataFrame, sample: pd.DataFrame) -> TargetSummary:
        counts = targets[self.target].value_counts().reindex(self.classes)
        ratio = round(float(counts.max() / counts.min()), 3)
        report = {"classes": {str(k): int(v) for k, v in counts.items()}, "imbalance_ratio": ratio}
        problems = []
        if self.format == LABEL:
            shown = set(sample[self.target])
            unseen = sorted(shown - set(self.classes))
            if unseen and len(shown) > 1:
                problems.append(f"sample_submission.csv uses labels never seen in train.csv: {', '.join(unseen[:10])}")
        if ratio > 10:
            problems.append(f"class imbalance: largest/smallest class = {ratio}")
        return TargetSummary(report, problems, counts, targets[self.target])

    def truth_strings(self, targets: pd.DataFrame) -> list[str]:
        return targets[self.target].tolist()

    # -- the model ------------------------------------------------------------------------------
    def for_fold(self, y: np.ndarray) -> "Classification":
        import copy

        counts = np.maximum(np.bincount(np.asarray(y, dtype=np.int64).reshape(-1), minlength=self.num_classes), 0.5)
        fold = copy.copy(self)
        fold.priors = tuple(float(c) for c in counts / counts.sum())
        return fold

    def head(self, features):
        """Softmax layer whose bias starts at log class priors (docs/recipe.md 3: initial loss)."""
        import keras

        return keras.layers.Dense(
            self.num_classes, activation="softmax", kernel_initializer=head_kernel(),
            bias_initializer=keras.initializers.Constant(np.log(np.asarray(self.priors, dtype="float32"))),
            dtype="float32",  # softmax in float32 even under mixed precision
            name=f"head_{safe_name(self.target)}")(features)

    def loss(self, name: str = "auto", label_smoothing: float = 0.0):
        import keras

        if not label_smoothing:
            return keras.losses.SparseCategoricalCrossentropy(reduction="none")
        # Keras's sparse cross-entropy has no label smoothing; the dense one does.
        dense = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing, reduction="none")
        return lambda y, p: dense(keras.ops.one_hot(keras.ops.cast(y, "int32"), self.num_classes), p)

    def batch_metric(self, y, outputs):
        import tensorflow as tf

        return tf.cast(tf.equal(tf.argmax(outputs, axis=-1, output_type=tf.int32), tf.cast(y, tf.int32)), tf.float32)

    def chance(self) -> float:
        return float(max(max(self.priors), 1.0 / self.num_classes))

    def prior_outputs(self, rows: int) -> np.ndarray:
        return np.tile(np.asarray(self.priors, dtype=np.float32), (rows, 1))

    def head_losses(self, y, outputs) -> dict[str, float]:
        p = np.clip(np.asarray(outputs, dtype=np.float64)[np.arange(len(y)), y], 1e-15, 1.0)
        return {"loss": float(-np.log(p).mean())}

    # -- predictions ----------------------------------------------------------------------------
    def metric_inputs(self, y, predictions, decoding, needs):
        predictions = np.asarray(predictions)
        return y, calibrated(predictions, decoding) if needs == "scores" else predictions.argmax(axis=1)

    def fit_decoding(self, y, predictions, fold_of) -> tuple[dict, float]:
        """A temperature for the probabilities when the metric scores them (log loss), kept
        only when its cross-fitted score beats the uncalibrated one (comp.tasks.temperature).
        The argmax, and so accuracy, never moves."""
        used = fold_of >= 0
        if self.metric.needs != "scores":
            return {}, self.score(y[used], np.asarray(predictions)[used])
        return temperature.fit_decoding(self, y[used], np.asarray(predictions)[used], fold_of[used])

    def fold_decodings(self, y, predictions, fold_of) -> dict[int, dict]:
        used = fold_of >= 0
        if self.metric.needs != "scores":
            return {}
        return temperature.fold_decodings(self, y[used], np.asarray(predictions)[used], fold_of[used])

    def decode(self, predictions, decoding=None) -> list[str]:
        return [self.classes[i] for i in np.asarray(predictions).argmax(axis=1)]

    def error_analysis(self, y, predictions, rows, decoding, truth, limit) -> ErrorAnalysis:
        """The confusion matrix, and the wrong predictions the model was surest of."""
        from sklearn.metrics import ConfusionMatrixDisplay

        labels = list(self.classes)
        oof = np.asarray(predictions)
        pred = oof[rows].argmax(1)

        def draw(fig):
            ax = fig.add_subplot(111)
            ConfusionMatrixDisplay.from_predictions(y[rows], pred, labels=list(range(len(labels))),
                                                    display_labels=labels, ax=ax, colorbar=False)
            ax.set_title("confusion matrix (OOF)")

        wrong = rows[pred != y[rows]]
        order = wrong[np.argsort(-oof[wrong].max(1))][:limit]
        captions = [f"label {labels[y[i]]}, predicted {labels[oof[i].argmax()]} ({oof[i].max():.2f})" for i in order]
        return ErrorAnalysis(order, captions, draw, "confusion matrix", (max(4, 0.45 * len(labels) + 2),) * 2)

    # -- submission -----------------------------------------------------------------------------
    def check_submission_format(self, sample: pd.DataFrame) -> None:
        """A single-label classifier writes one label per row: no lists."""
        if self.format != LABEL:
            return
        values = sample[self.target].fillna("")
        bad = values.str.contains(" ") & ~values.isin(self.classes)
        if bad.any():
            row = first_row(bad)
            raise DataError(f"sample_submission.csv row {row}: {self.target}={values.iloc[row - 2]!r} looks like a "
                            "label list, which task classification cannot produce; set task: multilabel in comp.yaml")

    def submission(self, sample, predictions, decoding) -> pd.DataFrame:
        frame = sample.copy()
        predictions = np.asarray(predictions, dtype=np.float64)
        if self.format == CLASS_COLUMNS:
            predictions = calibrated(predictions, decoding)
            for j, cls in enumerate(self.classes):
                frame[cls] = predictions[:, j]
        elif self.format == PROBABILITY:
            predictions = calibrated(predictions, decoding)
            frame[self.target] = predictions[:, 1] / predictions.sum(axis=1)
        else:
            frame[self.target] = self.decode(predictions)
        return frame

    def check_submission_values(self, frame: pd.DataFrame) -> None:
        if self.format == CLASS_COLUMNS:
            check_probabilities(frame, self.classes)
        elif self.format == PROBABILITY:
            check_probabilities(frame, [self.target])
        else:
            bad = ~frame[self.target].isin(self.classes)
            if bad.any():
                row = first_row(bad)
                raise DataError(f"submission row {row}: {self.target}={frame[self.target].iloc[row - 2]!r} "
                                "is not a label seen in train.csv")

    # -- non-Keras models -----------------------------------------------------------------------
    def estimator_outputs(self, fitted, x) -> np.ndarray:
        proba = np.asarray(fitted.predict_proba(x), dtype=np.float32)
        out = np.zeros((len(x), self.num_classes), dtype=np.float32)
        out[:, np.asarray(fitted.classes_, dtype=int)] = proba  # a class absent from a fold stays at 0
        return out


def calibrated(probabilities: np.ndarray, decoding: dict | None) -> np.ndarray:
    """Probabilities at the decoding's temperature (softmax of log p / T; rows renormalised)."""
    if not (decoding or {}).get(temperature.KEY):
        return probabilities
    logits = temperature.softened(np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-15, None)), decoding)
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _positive_rank(value: str) -> int:
    return 1 if value in ("1", "true", "yes", "y", "t", "positive", "pos") else 0


def _class_order(label: str) -> tuple:
    """Whole-number labels in numeric order ('2' before '10': an ordinal metric such as
    quadratic weighted kappa measures distance in this order), others as text after them."""
    try:
        return (0, int(label), label)
    except ValueError:
        return (1, 0, label)
