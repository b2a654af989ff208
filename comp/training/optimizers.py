"""The optimizer of a fold, from the recipe's settings (docs/recipe.md 5), built on Keras's own
optimizers: decoupled weight decay, global-norm clipping and EMA of the weights are their
options (``weight_decay``, ``global_clipnorm``, ``use_ema``)."""
from __future__ import annotations

from typing import Any

import keras

OPTIMIZERS = ("adam", "adamw", "sgd")
SGD_MOMENTUM = 0.9


def build_optimizer(name: str, learning_rate: Any, *, weight_decay: float = 0.0, clip: float = 0.0,
                    ema: float = 0.0) -> keras.optimizers.Optimizer:
    """``adam`` (no weight decay), ``adamw`` or ``sgd`` (Nesterov momentum 0.9, decoupled
    weight decay); ``clip`` > 0 clips the global gradient norm; ``ema`` > 0 keeps an
    exponential moving average of the weights with that momentum."""
    common: dict[str, Any] = {"learning_rate": learning_rate}
    if clip > 0:
        common["global_clipnorm"] = clip
    if ema > 0:
        common.update(use_ema=True, ema_momentum=ema)
    if name == "adam":
        return keras.optimizers.Adam(**common)
    if name == "adamw":
        return keras.optimizers.AdamW(weight_decay=weight_decay, **common)
    if name == "sgd":
        return keras.optimizers.SGD(momentum=SGD_MOMENTUM, nesterov=True, weight_decay=weight_decay or None, **common)
    raise ValueError(f"optimizer {name!r}: use one of {', '.join(OPTIMIZERS)}")


def exclude_from_decay(optimizer: keras.optimizers.Optimizer, variables) -> None:
    """Biases, BatchNorm scales and shifts (every 1-D weight) are not decayed: shrinking
    them does not regularise, it only shifts the activations."""
    if getattr(optimizer, "weight_decay", None):
        optimizer.exclude_from_weight_decay(var_list=[v for v in variables if len(v.shape) <= 1])


def base(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The optimizer inside a LossScaleOptimizer (mixed precision), or itself."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def ema_values(optimizer: keras.optimizers.Optimizer) -> list | None:
    """The moving averages of the trainable weights, in their order, or None without EMA.

    Keras keeps them in a private list and offers only ``finalize_variable_values``, which
    overwrites the weights for good; evaluating the average each epoch needs the values.
    """
    inner = base(optimizer)
    if not getattr(inner, "use_ema", False):
        return None
    return [v.numpy() for v in inner._model_variables_moving_average]
