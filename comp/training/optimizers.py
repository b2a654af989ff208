"""The optimizer of a fold, from the recipe's settings (docs/recipe.md 5), built on Keras's own
optimizers: decoupled weight decay, global-norm clipping and EMA of the weights are their
options (``weight_decay``, ``global_clipnorm``, ``use_ema``)."""
from __future__ import annotations

from typing import Any

import keras

OPTIMIZERS = ("adam", "adamw", "sgd")
SGD_MOMENTUM = 0.9


def build_optimizer(name: str, learning_rate: Any, *, weight_decay: float = 0.0, clip: float = 0.0,
                    ema: float = 0.0, rates: list[tuple[Any, float, int]] | None = None) -> keras.optimizers.Optimizer:
    """``adam`` (no weight decay), ``adamw`` or ``sgd`` (Nesterov momentum 0.9, decoupled
    weight decay); ``clip`` > 0 clips the global gradient norm; ``ema`` > 0 keeps an
    exponential moving average of the weights with that momentum. ``rates`` (``layer_rates``)
    gives some variables a fraction of the LR, from a given step on (0 before it)."""
    common: dict[str, Any] = {"learning_rate": learning_rate}
    if clip > 0:
        common["global_clipnorm"] = clip
    if ema > 0:
        common.update(use_ema=True, ema_momentum=ema)
    if name == "adam":
        kind, extra = keras.optimizers.Adam, {}
    elif name == "adamw":
        kind, extra = keras.optimizers.AdamW, {"weight_decay": weight_decay}
    elif name == "sgd":
        kind, extra = keras.optimizers.SGD, {"momentum": SGD_MOMENTUM, "nesterov": True,
                                             "weight_decay": weight_decay or None}
    else:
        raise ValueError(f"optimizer {name!r}: use one of {', '.join(OPTIMIZERS)}")
    if not rates:
        return kind(**extra, **common)
    return _with_rates(kind)(rates, **extra, **common)


def layer_rates(model: keras.Model, steps_per_epoch: int) -> list[tuple[Any, float, int]]:
    """(variable, its fraction of the LR, the first step it trains at) for the variables of
    every layer that declares ``lr_factor`` or ``frozen_epochs`` (a pretrained backbone,
    ``comp.api.pretrained``); a layer nested in one that declares is covered by the outer."""
    from comp.api import FROZEN_EPOCHS, LR_FACTOR
    from comp.training.batchnorm import nested_layers

    rates, seen = [], set()
    for layer in nested_layers(model):
        factor, frozen = getattr(layer, LR_FACTOR, None), getattr(layer, FROZEN_EPOCHS, None)
        if factor is None and frozen is None:
            continue
        for variable in layer.trainable_variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                rates.append((variable, float(1.0 if factor is None else factor), int(frozen or 0) * steps_per_epoch))
    return rates


def _with_rates(kind: type) -> type:
    """``kind`` with a learning rate per variable: Keras optimizers take one LR for all, so
    ``update_step``, which each variable's update goes through, scales it (the schedule's
    value times the variable's factor, 0 before its first step). Under Adam a smaller
    gradient would not do: its update does not depend on the gradient's scale. Decoupled
    weight decay, which Keras applies to every variable at the one LR, is applied here to
    these variables (those ``exclude_from_decay`` leaves decayed) at theirs."""

    class WithRates(kind):
        def __init__(self, rates: list[tuple[Any, float, int]], **kwargs):
            super().__init__(**kwargs)
            self._given, self._rates = rates, None

        def _rate(self, variable):
            if self._rates is None:  # keyed as the backend keys the variables it updates
                self._rates = {self._var_key(v): (factor, start) for v, factor, start in self._given}
            return self._rates.get(self._var_key(variable))

        def _use_weight_decay(self, variable):  # these are decayed in update_step, at their rate
            return self._rate(variable) is None and super()._use_weight_decay(variable)

        def update_step(self, gradient, variable, learning_rate):
            rate = self._rate(variable)
            if rate is not None:
                factor, start = rate
                on = keras.ops.cast(keras.ops.greater_equal(self.iterations, start), learning_rate.dtype)
                learning_rate = learning_rate * factor * on
                if self.weight_decay and super()._use_weight_decay(variable):  # exclude_from_decay's excluded
                    decay = keras.ops.cast(self.weight_decay * learning_rate, variable.dtype)
                    variable.assign_sub(variable * decay)
            return super().update_step(gradient, variable, learning_rate)

    WithRates.__name__ = WithRates.__qualname__ = f"{kind.__name__}WithRates"
    return WithRates


# Weights of more than one dimension that are not decayed either, by name: any bias (a
# per-column one such as comp.layers.PeriodicEmbedding's, an attention layer's per-head one:
# BERT-style recipes decay no bias) and the periodic embeddings' frequencies, which decay would
# pull towards zero, that is towards constant features (rtdl's reference code decays neither).
NOT_DECAYED = ("bias", "frequency")


def exclude_from_decay(optimizer: keras.optimizers.Optimizer, variables) -> None:
    """Biases, BatchNorm scales and shifts (every 1-D weight) and the weights ``NOT_DECAYED``
    names are not decayed: shrinking them does not regularise, it only shifts the activations."""
    if getattr(optimizer, "weight_decay", None):
        optimizer.exclude_from_weight_decay(var_list=[v for v in variables
                                                      if len(v.shape) <= 1 or v.name in NOT_DECAYED])


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
