"""What plugin authors import: the types a plugin receives or returns.

Plugin kinds (entry-point groups):

- ``comp.models``: a Keras model plugin is a function ``(input_spec, task, hp) -> keras.Model``
  ending in ``task.head(features)``; ``hp`` is a keras-tuner ``HyperParameters`` so `tune`
  can search the plugin's own knobs. It declares the input modalities it accepts with the
  :func:`modalities` decorator (default: images only). A model that is not a Keras model
  (gradient boosting, say) is an :class:`EstimatorModel`.
- ``comp.augmentations``: an :class:`Augmentation`.
- ``comp.metrics``: a :class:`Metric`.
- ``comp.tasks``: a task kind, a subclass of ``comp.tasks.base.Task``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

IMAGE, TABULAR = "image", "tabular"


@dataclass(frozen=True)
class Column:
    """One raw input column of a tabular competition, with statistics of the rows it was fit on.

    ``kind`` is ``numeric`` (float32, NaN = missing) or ``categorical`` (strings, "" =
    missing). ``key`` is the model input's name (a sanitised column name).
    """

    name: str
    key: str
    kind: str
    mean: float = 0.0
    variance: float = 1.0
    missing: bool = False  # the fit rows have missing values: add an indicator
    vocabulary: tuple[str, ...] = ()
    median: float = 0.0  # and spread (the middle half's width): robust scaling
    spread: float = 1.0


@dataclass(frozen=True)
class InputSpec:
    """What one example looks like to the model.

    Images: ``shape`` is (height, width, channels) of float images in [0, 1].
    Tables: ``columns`` lists the raw columns (``shape`` is ``(len(columns),)``); the model
    receives a dict ``{column.key: tensor of shape (1,)}`` and does its own preprocessing.
    ``rows``: about how many rows each fold's model trains on, one number for every fold of
    a run (``comp.training.cv.rows_a_fold``; 0: not known), so that a plugin may start from
    settings that suit the data's size.
    """

    shape: tuple[int, ...]
    modality: str = IMAGE
    columns: tuple[Column, ...] = ()
    rows: int = 0


def modalities(*names: str) -> Callable[[Callable], Callable]:
    """Declare the input modalities a Keras model plugin accepts: ``@modalities("image", "tabular")``."""

    def mark(fn: Callable) -> Callable:
        fn.modalities = tuple(names)
        return fn

    return mark


def regularizers(**values: Any) -> Callable[[Callable], Callable]:
    """Declare stronger settings of a Keras model plugin's own knobs, each a change stage
    regularize tries (one at a time): ``@regularizers(dropout=0.4)``."""

    def mark(fn: Callable) -> Callable:
        fn.regularizers = dict(values)
        return fn

    return mark


def preflight(check: Callable[[dict[str, Any]], None]) -> Callable[[Callable], Callable]:
    """Declare a Keras model plugin's check of its fixed knobs (``model.hp``) before any work:
    ``check(hp)`` raises ``comp.errors.ConfigError`` (one line) for what cannot work, e.g. a
    weights file that is not on this machine."""

    def mark(fn: Callable) -> Callable:
        fn.preflight = check
        return fn

    return mark


def min_rows(rows: int) -> Callable[[Callable], Callable]:
    """Declare the training rows below which a task's default portfolio
    (``baseline.variants=auto``) leaves a Keras model plugin out, as ``EstimatorModel.min_rows``
    does for an estimator (named explicitly, it trains on any table): ``@min_rows(1000)``."""

    def mark(fn: Callable) -> Callable:
        fn.min_rows = int(rows)
        return fn

    return mark


def companions(models: Callable[[dict[str, Any]], list[tuple[str, dict[str, Any]]]]) -> Callable[[Callable], Callable]:
    """Declare models worth training beside a Keras model plugin when it is the run's main
    model (``baseline.variants=auto``), for the ensemble to blend: ``models(hp)`` (the main
    model's fixed knobs, ``model.hp``) gives (plugin name, its knobs) pairs. A pretrained
    backbone declares its frozen features (``frozen_features`` on the same weights): a
    forward pass per image instead of a fine-tuning schedule, often the better model per
    second on a CPU."""

    def mark(fn: Callable) -> Callable:
        fn.companions = models
        return fn

    return mark


# A pretrained part's attributes, read by the training loop (``comp.training.optimizers``,
# ``comp.training.batchnorm``); set them with :func:`pretrained`.
LR_FACTOR, FROZEN_EPOCHS, KEEPS_STATISTICS = "lr_factor", "frozen_epochs", "keeps_statistics"


def pretrained(layer: Any, lr_factor: float, frozen_epochs: int) -> Any:
    """Mark ``layer`` (a pretrained backbone inside a model plugin) for fine-tuning: its weights
    stay as they are for the first ``frozen_epochs`` epochs (the new head learns first), then
    train at ``lr_factor`` times the LR and its schedule. Its BatchNorm layers are frozen:
    in Keras a BatchNormalization with ``trainable=False`` runs in inference mode, so the
    statistics it learnt on many images are kept, not re-estimated from a few small batches
    (nor recalibrated after SWA). (Calling it with ``training=False`` would not do: a Keras 3
    model passes its own ``training`` to every layer.)"""
    from comp.training.batchnorm import nested_layers

    for part in nested_layers(layer):
        if type(part).__name__ == "BatchNormalization":
            part.trainable = False
    setattr(layer, LR_FACTOR, float(lr_factor))
    setattr(layer, FROZEN_EPOCHS, int(frozen_epochs))
    setattr(layer, KEEPS_STATISTICS, True)
    return layer


def plugin_regularizers(plugin: Any) -> dict[str, Any]:
    """A model plugin's declared regularizers (knob -> stronger value); none when undeclared."""
    return dict(getattr(plugin, "regularizers", {}) or {})


def plugin_modalities(plugin: Any) -> tuple[str, ...]:
    """The modalities a model plugin accepts (undeclared Keras plugins: images only)."""
    return tuple(getattr(plugin, "modalities", (IMAGE,)))


@dataclass(frozen=True)
class EstimatorModel:
    """A model plugin that is not a Keras model: a scikit-learn style estimator factory.

    ``build(input_spec, task, hp)`` returns an unfitted estimator with ``fit(X, y)`` and
    ``predict`` (and ``predict_proba`` for classifiers), where ``X`` is a pandas DataFrame
    of the raw columns (numbers as float with NaN, categories as pandas ``category``) and
    ``y`` the task's encoded target. The task fits it (several copies for multi-output
    targets) and turns its predictions into the same arrays a Keras head gives, so OOF
    and test predictions, ensembles and submissions treat both alike.
    ``tasks`` lists the task kinds it can learn; ``regularizers`` stronger settings of its
    knobs for stage regularize to try (as :func:`regularizers` does for a Keras plugin);
    ``min_rows`` the training rows below which a task's default portfolio
    (``baseline.variants=auto``) leaves it out (named explicitly, it trains on any table).
    For images (``modalities=("image",)``) ``X`` is the uint8 image array (n, height, width,
    channels) instead of a DataFrame.
    """

    build: Callable[[InputSpec, Any, Any], Any]
    modalities: tuple[str, ...] = (TABULAR,)
    tasks: tuple[str, ...] = ("classification", "regression", "multilabel")
    description: str = ""
    regularizers: dict[str, Any] = field(default_factory=dict)
    preflight: Callable[[dict[str, Any]], None] | None = None  # as :func:`preflight` declares for a Keras plugin
    min_rows: int = 0


@dataclass(frozen=True)
class Augmentation:
    """A Keras preprocessing layer factory and where it is safe to use.

    ``build(input_spec)``, or ``build(input_spec, strength)`` for one with a ``strength``,
    returns a layer that changes inputs only when ``training=True``; images reach it scaled
    to [0, 1]. ``tasks`` lists the task kinds whose labels it preserves; ``tta_safe`` says
    whether it may be used for test-time augmentation, and ``views(input_spec, strength)``
    gives its fixed views for it: a list of named deterministic Keras layers on the model's
    raw input batch (e.g. ``comp.layers.affine_view``); ``modalities`` what inputs it works
    on; ``default`` whether ``train.augmentations=auto`` includes it (light,
    label-preserving). ``strength`` is the default of its one knob, ``strength_range`` the
    values allowed and ``strength_unit`` what it measures: a policy sets it per name, as in
    ``train.augmentations=[shift:0.1,rotate:10]``.

    ``batch=True`` marks a batch-level augmentation that mixes examples and their labels
    (mixup, cutmix): ``build`` then returns ``mix(images, seed) -> (mixed, partner, weight)``,
    applied to each training batch before the model (``seed``: a stateless seed that
    changes every step), where row i was mixed with row ``partner[i]`` and the loss becomes
    ``weight * loss(y) + (1 - weight) * loss(y[partner])`` - for a loss linear in its
    targets (cross-entropy), exactly the loss on the mixed labels.
    """

    build: Callable[..., Any]
    tasks: tuple[str, ...]
    tta_safe: bool
    description: str
    modalities: tuple[str, ...] = (IMAGE,)
    default: bool = False
    strength: float | None = None  # None: no knob, build(input_spec) takes no strength
    strength_range: tuple[float, float] = (0.0, 1.0)
    strength_unit: str = ""
    batch: bool = False
    views: Callable[..., list] | None = None  # test-time views: (input_spec, strength) -> [named layer]

    def layer(self, input_spec: InputSpec, strength: float | None = None) -> Any:
        """The layer at ``strength`` (the default when None)."""
        if self.strength is None:
            return self.build(input_spec)
        return self.build(input_spec, self.strength if strength is None else strength)

    def test_views(self, input_spec: InputSpec, strength: float | None = None) -> list:
        """Its test-time views at ``strength`` (none unless ``tta_safe`` and ``views``)."""
        if not (self.tta_safe and self.views):
            return []
        return self.views(input_spec) if self.strength is None else self.views(
            input_spec, self.strength if strength is None else strength)


@dataclass(frozen=True)
class Metric:
    """A competition metric ``fn(truth, prediction) -> float`` over all rows at once.

    What ``fn`` receives depends on the task kind and on ``needs``:

    ============== ============================ ====================================== =========================
    kind           truth                        needs="labels"                         needs="scores"
    ============== ============================ ====================================== =========================
    classification class index (n,)             predicted class index (n,)             probabilities (n, classes)
    multilabel     0/1 (n, labels)              0/1 after the thresholds (n, labels)   probabilities (n, labels)
    regression     target value (n,)            predicted value (n,)                   predicted value (n,)
    sequence       string (n,)                  predicted string (n,)                  probabilities (n, len, chars+1)
    ============== ============================ ====================================== =========================

    Class indices follow ``task.classes``; labels follow ``task.labels``.
    A metric with ``needs="scores"`` makes the submission hold probabilities.
    """

    fn: Callable[[Any, Any], float]
    higher_is_better: bool
    kinds: tuple[str, ...]
    needs: str = "labels"  # labels | scores
    description: str = ""
