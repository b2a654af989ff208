"""Sequence: a string of up to ``max_len`` characters, e.g. a street number '0407'.

One softmax head per character position, each over the alphabet seen in train plus a
blank class that pads shorter strings (left-aligned: '407' is 4, 0, 7, blank, ...). The
metric is exact match of the whole string; per-position accuracy is reported beside it.
Leading zeros are characters like any other, so '07' stays '07'.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from comp.errors import DataError
from comp.tasks.base import Setting, TargetSummary, Task, TaskSource, first_row, head_kernel, safe_name


class Sequence(Task):
    kind = "sequence"
    settings = {"max_len": Setting(lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                                   "a positive whole number")}  # the longest string to predict
    default_metric = "exact_match"
    report_metrics = ("exact_match", "position_accuracy")
    progress_metric = "exact_match"
    default_models = {"image": "seq_cnn"}
    losses = ("auto", "crossentropy")
    estimator_role = None

    def __init__(self, source: TaskSource):
        super().__init__(source)
        column = self.targets[0]
        values = source.train_targets[column].fillna("")
        empty = values == ""
        if empty.any():
            raise DataError(f"train.csv row {first_row(empty)}: empty sequence in {column}")
        longest = int(values.str.len().max())
        declared = source.settings.get("max_len")
        if declared is not None:
            if not isinstance(declared, int) or isinstance(declared, bool) or declared < 1:
                raise DataError(f"comp.yaml: max_len={declared!r}; use a positive whole number")
            too_long = values.str.len() > declared
            if too_long.any():
                row = first_row(too_long)
                raise DataError(f"train.csv row {row}: {column}={values.iloc[row - 2]!r} is longer than "
                                f"max_len {declared} set in comp.yaml; raise max_len")
        self.max_len = int(declared or longest)
        self.alphabet = tuple(sorted({ch for v in values for ch in v}))
        counts = np.zeros((self.max_len, len(self.alphabet) + 1))
        y = self._encode_values(values)
        for position in range(self.max_len):
            counts[position] = np.bincount(y[:, position], minlength=len(self.alphabet) + 1)
        # Each position's class frequencies, smoothed so no class starts at probability zero.
        self.priors = (counts + 0.5) / (counts + 0.5).sum(axis=1, keepdims=True)

    @property
    def blank(self) -> int:
        return len(self.alphabet)

    def submission_format(self) -> str:
        return f"column {self.target} holds the predicted string (up to {self.max_len} characters)"

    # -- targets --------------------------------------------------------------------------------
    def _encode_values(self, values: pd.Series) -> np.ndarray:
        index = {ch: i for i, ch in enumerate(self.alphabet)}
        out = np.full((len(values), self.max_len), self.blank, dtype=np.int32)
        for row, value in enumerate(values):
            for position, ch in enumerate(value[:self.max_len]):
                out[row, position] = index[ch]
        return out

    def encode(self, targets: pd.DataFrame) -> np.ndarray:
        return self._encode_values(targets[self.target].fillna(""))

    def strata(self, targets: pd.DataFrame) -> np.ndarray:
        """Sequence length: folds get the same mix of short and long strings."""
        return targets[self.target].str.len().to_numpy()

    def summary(self, targets, sample) -> TargetSummary:
        lengths = targets[self.target].str.len().value_counts().sort_index()
        report = {"target": {"lengths": {int(k): int(v) for k, v in lengths.items()}, "max_len": self.max_len,
                             "alphabet": "".join(self.alphabet)}}
        counts = pd.Series(lengths.to_numpy(), index=[f"length {k}" for k in lengths.index])
        groups = targets[self.target].str.len().map(lambda n: f"length {n}")
        return TargetSummary(report, [], counts, groups)

    def truth_strings(self, targets: pd.DataFrame) -> list[str]:
        return targets[self.target].tolist()

    # -- the model ------------------------------------------------------------------------------
    def for_fold(self, y: np.ndarray) -> "Sequence":
        import copy

        y = np.asarray(y, dtype=np.int64)
        counts = np.stack([np.bincount(y[:, p], minlength=self.blank + 1) for p in range(self.max_len)]) + 0.5
        fold = copy.copy(self)
        fold.priors = counts / counts.sum(axis=1, keepdims=True)
        return fold

    def head(self, features):
        """One softmax head per position, bias at the position's class priors, stacked to
        (batch, max_len, alphabet + 1)."""
        import keras

        heads = []
        for position in range(self.max_len):
            heads.append(keras.layers.Dense(
                self.blank + 1, kernel_initializer=head_kernel(), bias_initializer=keras.initializers.Constant(np.log(self.priors[position])),
                dtype="float32", name=f"head_{safe_name(self.target)}_{position}")(features))
        stacked = keras.layers.Concatenate(dtype="float32")(heads) if len(heads) > 1 else heads[0]
        stacked = keras.layers.Reshape((self.max_len, self.blank + 1), dtype="float32")(stacked)
        return keras.layers.Softmax(axis=-1, dtype="float32", name=f"head_{safe_name(self.target)}")(stacked)

    def loss(self, name: str = "auto", label_smoothing: float = 0.0):
        import keras

        if label_smoothing:
            dense = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing, reduction="none")
            crossentropy = lambda y, p: dense(keras.ops.one_hot(keras.ops.cast(y, "int32"), self.blank + 1), p)  # noqa: E731
        else:
            crossentropy = keras.losses.SparseCategoricalCrossentropy(reduction="none")

        def per_example(y, outputs):  # (batch, max_len) -> mean over positions
            return keras.ops.mean(crossentropy(y, outputs), axis=-1)

        return per_example

    def batch_metric(self, y, outputs):
        import tensorflow as tf

        right = tf.equal(tf.argmax(outputs, axis=-1, output_type=tf.int32), tf.cast(y, tf.int32))
        return tf.cast(tf.reduce_all(right, axis=-1), tf.float32)

    def chance(self) -> float:
        return float(np.prod(self.priors.max(axis=1)))

    def prior_outputs(self, rows: int) -> np.ndarray:
        return np.tile(self.priors.astype(np.float32)[None], (rows, 1, 1))

    def head_losses(self, y, outputs) -> dict[str, float]:
        p = np.asarray(outputs, dtype=np.float64)
        rows = np.arange(len(y))
        return {f"position {k + 1}": float(-np.log(np.clip(p[rows, k, y[:, k]], 1e-15, 1.0)).mean())
                for k in range(self.max_len)}

    # -- predictions ----------------------------------------------------------------------------
    def metric_inputs(self, y, predictions, decoding, needs):
        truth = np.asarray(self._strings(np.asarray(y)), dtype=object)
        if needs == "scores":
            return truth, np.asarray(predictions)
        return truth, np.asarray(self.decode(predictions), dtype=object)

    def _strings(self, codes: np.ndarray) -> list[str]:
        # Column by column over every row at once: stage ensemble's greedy selection scores a
        # blend thousands of times, each decoded to strings, and a loop over rows and positions
        # took ~16 s of that stage's 34 on the street demo at budget=5m (~2.5 s now).
        codes = np.asarray(codes)
        chars = np.asarray([*self.alphabet, ""], dtype=object)[codes]
        chars[np.cumsum(codes == self.blank, axis=1) > 0] = ""  # left-aligned: the first blank ends the string
        out = np.full(len(codes), "", dtype=object)
        for position in range(codes.shape[1]):
            out = out + chars[:, position]
        return out.tolist()

    def row_losses(self, y, predictions):
        p = np.clip(np.asarray(predictions, dtype=np.float64), 1e-7, 1 - 1e-7)
        rows = np.arange(len(y))[:, None]
        return -np.log(p[rows, np.arange(y.shape[1])[None, :], y]).sum(1)

    def decode(self, predictions, decoding=None) -> list[str]:
        p = np.asarray(predictions)
        codes = p.argmax(axis=-1)
        # Train has no empty strings: position 1 takes its likeliest character, never blank.
        codes[:, 0] = p[:, 0, :self.blank].argmax(axis=-1)
        return self._strings(codes)

    # -- submission -----------------------------------------------------------------------------
    def check_submission_format(self, sample: pd.DataFrame) -> None:
        values = sample[self.target].fillna("")
        too_long = values.str.len() > self.max_len
        if too_long.any():
            row = first_row(too_long)
            raise DataError(f"sample_submission.csv row {row}: {self.target}={values.iloc[row - 2]!r} is longer "
                            f"than the longest train string ({self.max_len} characters), which this task cannot "
                            "produce; set max_len in comp.yaml")

    def submission(self, sample, predictions, decoding) -> pd.DataFrame:
        frame = sample.copy()
        frame[self.target] = self.decode(predictions)
        return frame

    def check_submission_values(self, frame: pd.DataFrame) -> None:
        known = set(self.alphabet)
        values = frame[self.target].fillna("")
        bad = values.map(lambda v: not v or len(v) > self.max_len or not set(v) <= known)
        if bad.any():
            raise DataError(f"submission row {first_row(bad)}: {self.target}={values[bad].iloc[0]!r} is not a "
                            f"string of 1-{self.max_len} characters seen in train.csv")
