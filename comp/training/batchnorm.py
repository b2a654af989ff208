"""BatchNorm momentum suited to the number of steps per epoch (docs/recipe.md 4).

Keras starts every BatchNormalization layer's moving mean at 0 and moving variance at 1
and updates them with momentum 0.99, so they need a few hundred steps to forget those
starting values. A small competition has a few dozen steps per epoch: for the first
epochs validation (which uses the moving statistics) sits near chance while training
(which uses the batch statistics) is fine, and "best epoch" selection is misled.

``train.bn_momentum=auto`` (the default) sets every BatchNormalization layer of the
built model, nested models included, to ``min(0.99, max(0.5, 1 - 4 / steps_per_epoch))``:
the starting values weigh ``momentum ** (steps / 4) ~ e^-1`` after a quarter of an epoch
and ~ e^-4 after one epoch, while the moving statistics still average over several
batches. It must be set before the first training step traces the model.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import keras


def auto_momentum(steps_per_epoch: int) -> float:
    """Momentum whose starting values fade within about a quarter of an epoch."""
    return float(min(0.99, max(0.5, 1.0 - 4.0 / max(int(steps_per_epoch), 1))))


def resolve_momentum(setting: Any, steps_per_epoch: int) -> float:
    """``train.bn_momentum`` (``auto`` or a number) -> the momentum to use."""
    return auto_momentum(steps_per_epoch) if setting == "auto" else float(setting)


def steps_per_epoch(rows: int, batch_size: int) -> int:
    """Training steps per epoch under the current tf.distribute strategy (global batch)."""
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return max(1, math.ceil(rows / (batch_size * replicas)))


def nested_layers(model: keras.layers.Layer, skip=None) -> Iterator[keras.layers.Layer]:
    """Every layer of ``model`` depth first, in order, nested models and layers included;
    none inside a layer for which ``skip(layer)`` is true (nor that layer)."""
    seen: set[int] = set()
    stack = [model]
    while stack:
        layer = stack.pop()
        if id(layer) in seen or (skip is not None and skip(layer)):
            continue
        seen.add(id(layer))
        yield layer
        stack.extend(reversed(getattr(layer, "_layers", None) or getattr(layer, "layers", None) or []))


def batchnorm_layers(model: keras.layers.Layer) -> Iterator[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer of ``model`` that learns its statistics, nested models
    and layers included: not those of a part that keeps its own (a pretrained backbone,
    ``comp.api.pretrained``), nor a frozen one (``trainable=False``: Keras runs it in
    inference mode, so its statistics could not be gathered again; and a reloaded model
    keeps that, not the part's marker)."""
    from comp.api import KEEPS_STATISTICS

    return (layer for layer in nested_layers(model, skip=lambda part: getattr(part, KEEPS_STATISTICS, False))
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable)


def set_momentum(model: keras.Model, momentum: float) -> int:
    """Set the momentum of every BatchNormalization layer; returns how many there are."""
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"BatchNorm momentum must be in [0, 1), got {momentum}")
    count = 0
    for layer in batchnorm_layers(model):
        layer.momentum = float(momentum)
        count += 1
    return count
