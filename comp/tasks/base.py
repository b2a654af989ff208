"""The task protocol: everything that depends on what is being predicted lives in a task.

A task kind (classification, multilabel, regression, sequence, or a ``comp.tasks``
plugin) reads the train targets, encodes them for training, builds the model's head and
loss, tracks a metric on the device while training, scores full predictions with the
competition metric, decodes predictions back into the competition's strings and writes
the submission columns. The training loop, diagnostics, the check stage, predict and
submit ask the task; none of them branches on its kind.

Arrays, per kind (``n`` rows):

- ``y`` (``encode``): what the loss sees, e.g. class indices or standardised values.
- model outputs: what the head produces, e.g. probabilities or standardised values.
- predictions (``predictions(outputs)``): what OOF/test arrays hold and what is averaged
  across folds and models, e.g. probabilities or values in the target's own units.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
import pandas as pd

from comp.api import Metric
from comp.errors import ConfigError, DataError


@dataclass(frozen=True)
class TaskSource:
    """What a task is built from: the competition's tables and settings."""

    train_targets: pd.DataFrame  # train.csv's target columns, as strings
    sample: pd.DataFrame  # sample_submission.csv, as strings
    id_col: str
    submission_cols: tuple[str, ...]  # sample_submission's columns after the id
    settings: dict = field(default_factory=dict)  # comp.yaml (task-specific keys too)


@dataclass(frozen=True)
class Setting:
    """A comp.yaml key a task kind reads: what values it takes (``check``), in words
    (``help``), and how a valid value is normalised (``convert``)."""

    check: Callable[[Any], bool]
    help: str
    convert: Callable[[Any], Any] = lambda value: value


def is_text(value: Any) -> bool:
    """A column name or label as YAML may give it: a string or a whole number."""
    return isinstance(value, (str, int)) and not isinstance(value, bool)


@dataclass
class ErrorAnalysis:
    """The report's look at a task's OOF errors: the rows to show (worst first), what each
    is (``captions``: the label and the prediction), and optionally a figure of all errors
    (``draw(fig)``: a confusion matrix, residuals)."""

    order: np.ndarray
    captions: list[str]
    draw: Callable[[Any], None] | None = None
    alt: str = ""
    size: tuple[float, float] = (6, 4)


@dataclass
class TargetSummary:
    """What `inspect` reports about the target."""

    report: dict
    problems: list[str]
    counts: pd.Series | None = None  # bar chart of classes/labels/lengths, when it means something
    groups: pd.Series | None = None  # contact-sheet rows (e.g. the class of each train row)


class Task(ABC):
    """Base of every task kind. Subclasses set the class attributes and implement the
    abstract methods; the defaults below fit most kinds."""

    kind: ClassVar[str]
    default_metric: ClassVar[str]
    report_metrics: ClassVar[tuple[str, ...]] = ()  # also computed on OOF predictions and recorded
    progress_metric: ClassVar[str] = "accuracy"  # tracked on the device while training
    progress_is_accuracy: ClassVar[bool] = True  # a share in [0, 1], higher is better
    default_models: ClassVar[dict[str, str]] = {"image": "small_cnn", "tabular": "hgb"}
    # baseline.variants=auto: models trained beside the main one for the ensemble to blend, by
    # modality (the main model is left out of its own portfolio). On tables boosted trees,
    # randomized trees and a linear model err differently; measured in benchmarks/README.md
    # ("A table portfolio"): the blend beat the best single model on most real tables. A
    # second boosting configuration grown to its early stopping joins from 10,000 rows (its
    # plugin's min_rows), where 300 iterations can underfit ("comp against AutoGluon"). CatBoost
    # (comp[boost]) is not in it: in the pipeline it moved no held-back score by more than
    # 0.0001 on five tables ("CatBoost beside the portfolio"). The MLP (periodic embeddings of
    # the numbers) joins from 10,000 rows (its plugin's min_rows); under a budget the run plan funds
    # its schedule after the estimators' share, or leaves it out where that buys too few epochs
    # ("The MLP funded by the run plan").
    default_variants: ClassVar[dict[str, tuple[str, ...]]] = {
        "tabular": ("hgb", "hgb_long", "extra_trees", "linear", "mlp")}
    losses: ClassVar[tuple[str, ...]] = ("auto",)  # train.loss values this kind accepts
    estimator_role: ClassVar[str | None] = "classifier"  # what a non-Keras model must be: classifier | regressor
    settings: ClassVar[dict[str, Setting]] = {}  # comp.yaml keys of this kind, read via TaskSource.settings

    metric_name: str
    metric: Metric
    metric_evidence: str = ""

    def __init__(self, source: TaskSource):
        self.targets = tuple(source.train_targets.columns)
        self.id_col = source.id_col
        self.submission_cols = tuple(source.submission_cols)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def create(cls, source: TaskSource) -> "Task":
        """Read and check the train targets; raise DataError naming the row for bad values."""
        return cls(source)

    @property
    def target(self) -> str:
        return self.targets[0]

    def probability_evidence(self) -> str | None:
        """Why the submission should hold probabilities (seen in sample_submission), or None."""
        return None

    def suggested_metric(self) -> str | None:
        """The metric the sample submission points to (e.g. probabilities -> roc_auc)."""
        return None

    def use_metric(self, name: str, metric: Metric, evidence: str) -> None:
        """Adopt the competition metric; a metric made for other kinds is a ConfigError."""
        if self.kind not in metric.kinds:
            raise ConfigError(f"metric={name} does not fit task {self.kind} (it is for {', '.join(metric.kinds)}); "
                              f"use one of {', '.join(self.metric_choices())}")
        self.metric_name, self.metric, self.metric_evidence = name, metric, evidence
        self.after_metric()

    def after_metric(self) -> None:
        """Decisions that depend on the metric (e.g. the submission format); may raise DataError."""

    def metric_choices(self) -> list[str]:
        from comp.registry import METRICS

        return [p.name for p in METRICS.list() if self.kind in _metric_kinds(p.name)]

    @property
    def higher_is_better(self) -> bool:
        return self.metric.higher_is_better

    @property
    def objective(self):
        """The competition metric's direction: what every comparison of scores asks."""
        from comp.objective import Objective

        return Objective(self.metric.higher_is_better)

    # -- targets -----------------------------------------------------------------------------
    @abstractmethod
    def encode(self, targets: pd.DataFrame) -> np.ndarray:
        """Train targets (strings) -> ``y``, the array the loss is computed on."""

    @abstractmethod
    def strata(self, targets: pd.DataFrame) -> np.ndarray:
        """What `split` stratifies on: a 1-D key, or a 2-D 0/1 matrix (iterative stratification)."""

    def check_folds(self, targets: pd.DataFrame, folds: int) -> None:
        """Raise DataError when ``folds`` folds cannot all see the target (e.g. a rare class)."""

    @abstractmethod
    def summary(self, targets: pd.DataFrame, sample: pd.DataFrame) -> TargetSummary:
        """Inspect's view of the target."""

    @abstractmethod
    def truth_strings(self, targets: pd.DataFrame) -> list[str]:
        """The target of each train row as one string (oof.csv's target column)."""

    # -- the model ---------------------------------------------------------------------------
    @abstractmethod
    def head(self, features):
        """The output layer(s) on a feature tensor; starts at the priors (docs/recipe.md 3)."""

    def for_fold(self, y: np.ndarray) -> "Task":
        """This task with its head starting at the priors of ``y`` (a fold's training rows,
        encoded), so no statistic of the validation rows reaches the fold's model. The default
        head has nothing fitted: the task itself."""
        return self

    smoothable: ClassVar[bool] = True  # takes train.label_smoothing
    # train.label_smoothing=auto: measured at budget=5m, stage=all side by side with 0 on five
    # image competitions (benchmarks/README.md, "Label smoothing by default"); not yet on a
    # table's MLP, which takes it too.
    auto_label_smoothing: ClassVar[float] = 0.1

    def label_smoothing(self, setting: float | str) -> float:
        """``train.label_smoothing`` as a number: ``auto`` is this kind's default (0 where it
        has no labels to smooth)."""
        if setting == "auto":
            return self.auto_label_smoothing if self.smoothable else 0.0
        return float(setting)

    @abstractmethod
    def loss(self, name: str = "auto", label_smoothing: float = 0.0):
        """Per-example loss ``fn(y, outputs) -> (batch,)`` (Keras loss with reduction none)."""

    @abstractmethod
    def batch_metric(self, y, outputs):
        """Per-example value of ``progress_metric`` as a tensor (summed on the device)."""

    def chance(self) -> float | None:
        """``progress_metric`` of a model that predicts the priors (None if meaningless)."""
        return None

    @abstractmethod
    def prior_outputs(self, rows: int) -> np.ndarray:
        """Model outputs of a model that knows only the priors: the expected initial loss."""

    def head_losses(self, y: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
        """Mean loss of each output head (one entry for single-head tasks)."""
        return {"loss": float(np.mean(np.asarray(self.loss()(y, outputs))))}

    # -- predictions -------------------------------------------------------------------------
    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        """Model outputs -> the prediction array kept as OOF/test predictions and averaged."""
        return np.asarray(outputs, dtype=np.float32)

    @abstractmethod
    def metric_inputs(self, y: np.ndarray, predictions: np.ndarray, decoding: dict | None,
                      needs: str) -> tuple[Any, Any]:
        """(truth, prediction) in the layout ``comp.api.Metric`` documents for this kind."""

    def score(self, y: np.ndarray, predictions: np.ndarray, decoding: dict | None = None,
              metric: tuple[str, Metric] | None = None) -> float:
        """The competition metric (or ``metric``) on full predictions."""
        _, m = metric or (self.metric_name, self.metric)
        return float(m.fn(*self.metric_inputs(y, predictions, decoding, m.needs)))

    def scores(self, y: np.ndarray, predictions: np.ndarray, decoding: dict | None = None) -> dict[str, float]:
        """The competition metric and ``report_metrics``, by name."""
        from comp.registry import METRICS

        out = {self.metric_name: self.score(y, predictions, decoding)}
        for name in self.report_metrics:
            if name not in out:
                try:
                    out[name] = self.score(y, predictions, decoding, (name, METRICS.load(name)))
                except ValueError:  # e.g. AUC on a fold with one class: not reportable
                    continue
        return out

    def fit_decoding(self, y: np.ndarray, predictions: np.ndarray, fold_of: np.ndarray) -> tuple[dict, float]:
        """Decoding parameters chosen on OOF predictions, and the OOF score they honestly give.

        The default has nothing to fit. Kinds with thresholds choose them on the other
        folds' predictions for each fold (cross-fitting), so the score is not optimistic;
        the parameters returned are fit on all OOF rows, for the test set.
        """
        return {}, self.score(y, predictions)

    def fold_decodings(self, y: np.ndarray, predictions: np.ndarray, fold_of: np.ndarray) -> dict[int, dict]:
        """Each fold's decoding parameters, chosen on the other folds' rows (cross-fitting);
        empty for kinds with nothing to fit."""
        return {}

    def honest_scores(self, y: np.ndarray, predictions: np.ndarray, fold_of: np.ndarray) -> dict[str, float]:
        """``scores`` with each fold's rows decoded by parameters fit on the other folds, so a
        secondary metric is as honest as the main one."""
        from comp.registry import METRICS

        decodings = self.fold_decodings(y, predictions, fold_of)
        if not decodings:
            return self.scores(y, predictions)
        out = {}
        for name in dict.fromkeys((self.metric_name, *self.report_metrics)):
            metric = self.metric if name == self.metric_name else METRICS.load(name)
            try:
                out[name] = self.cross_fitted(y, predictions, fold_of, decodings, metric)
            except ValueError:  # e.g. AUC with one class: not reportable
                continue
        return out

    def cross_fitted(self, y: np.ndarray, predictions: np.ndarray, fold_of: np.ndarray, decodings: dict[int, dict],
                     metric: Metric | None = None) -> float:
        """``metric`` (default: the competition's) over the rows of the folds in ``decodings``,
        each fold's rows decoded by its own parameters; the plain score when there are none."""
        metric = metric or self.metric
        if not decodings:
            return float(metric.fn(*self.metric_inputs(y, predictions, None, metric.needs)))
        parts = [self.metric_inputs(y[fold_of == k], predictions[fold_of == k], d, metric.needs)
                 for k, d in decodings.items()]
        return float(metric.fn(np.concatenate([t for t, _ in parts]), np.concatenate([p for _, p in parts])))

    @abstractmethod
    def decode(self, predictions: np.ndarray, decoding: dict | None = None) -> list[str]:
        """Predictions -> one string per row in the competition's terms (for reading)."""

    def row_losses(self, y: np.ndarray, predictions: np.ndarray) -> np.ndarray | None:
        """Each row's loss under ``predictions`` (None: this kind ranks no errors that way)."""
        return None

    def error_analysis(self, y: np.ndarray, predictions: np.ndarray, rows: np.ndarray, decoding: dict | None,
                       truth: list[str], limit: int) -> ErrorAnalysis | None:
        """The OOF errors worth a look, of ``rows``: by default the rows the model is most sure
        of and still gets wrong (the highest losses), the likeliest label errors. None when
        this kind has no such ranking."""
        losses = self.row_losses(y[rows], predictions[rows])
        if losses is None:
            return None
        order = rows[np.argsort(-losses)][:limit]
        decoded = self.decode(predictions[order], decoding)
        return ErrorAnalysis(order, [f"label {truth[i]}, predicted {d}" for i, d in zip(order, decoded)])

    # -- submission --------------------------------------------------------------------------
    def check_submission_format(self, sample: pd.DataFrame) -> None:
        """Raise DataError when sample_submission asks for what this task cannot produce."""

    @abstractmethod
    def submission(self, sample: pd.DataFrame, predictions: np.ndarray, decoding: dict | None) -> pd.DataFrame:
        """sample_submission with its target columns filled from ``predictions``."""

    @abstractmethod
    def check_submission_values(self, frame: pd.DataFrame) -> None:
        """Raise DataError naming the first row whose value this task could not have meant."""

    def submission_format(self) -> str:
        """A short description of what the submission columns hold, for the log."""
        return ""

    # -- non-Keras models --------------------------------------------------------------------
    def fit_estimator(self, make, x: pd.DataFrame, y: np.ndarray, fit=None):
        """Fit scikit-learn style estimator(s) from the factory ``make()`` on encoded ``y``;
        ``fit(estimator, x, y, share)`` fits one (``comp.training.bounded_fit``: within a
        deadline), ``share`` the part of the time left that this estimator may take."""
        return (fit or plain_fit)(make(), x, y, 1.0)

    def estimator_outputs(self, fitted, x: pd.DataFrame) -> np.ndarray:
        """What the Keras head would output, from a fitted estimator."""
        raise ConfigError(f"task {self.kind} cannot be learned by a non-Keras model plugin; pick a Keras model")


def plain_fit(estimator, x, y, share: float = 1.0):
    """``fit_estimator``'s default ``fit``: the estimator's own, with no deadline."""
    return estimator.fit(x, y)


def _metric_kinds(name: str) -> tuple[str, ...]:
    from comp.registry import METRICS

    try:
        return METRICS.load(name).kinds
    except Exception:  # a broken plugin is reported where it is used, not while listing
        return ()


def head_kernel():
    """A last-layer kernel with a tenth of the usual (fan-in) variance: the untrained model then
    predicts about the priors its bias encodes (docs/recipe.md 3: initial loss; on the digits
    demo 2.321 vs the prior's 2.303, where the usual scale gives 2.545) while the backbone still
    gets gradients as large as learning needs (a hundredth of the variance gave 2.303 but
    learned half as fast in the first epochs)."""
    import keras

    return keras.initializers.VarianceScaling(0.1, "fan_in")


def first_row(mask) -> int:
    """The 1-based CSV row (header = row 1) of the first True in ``mask``."""
    return int(np.flatnonzero(np.asarray(mask))[0]) + 2


def is_fractional(values: pd.Series) -> bool:
    """Every value is a number in [0, 1] and at least one lies strictly between: probabilities."""
    numbers = pd.to_numeric(values, errors="coerce")
    return bool(numbers.notna().all() and numbers.between(0, 1).all() and ((numbers > 0) & (numbers < 1)).any())


def check_probabilities(frame: pd.DataFrame, columns) -> None:
    for col in columns:
        numbers = pd.to_numeric(frame[col], errors="coerce")
        bad = numbers.isna() | ~numbers.between(0, 1)
        if bad.any():
            row = first_row(bad)
            raise DataError(f"submission row {row}: {col}={frame[col].iloc[row - 2]!r} is not a probability in [0, 1]")


def safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in str(name))
