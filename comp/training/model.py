"""Assemble a trainable model: uint8 input -> scaling -> augmentation -> plugin -> task head."""
from __future__ import annotations

import difflib
from typing import Any

import keras
import keras_tuner as kt

from comp.api import InputSpec
from comp.errors import ConfigError, PluginError
from comp.registry import AUGMENTATIONS, MODELS
from comp.training.batchnorm import set_momentum


def build_model(input_spec: InputSpec, task: Any, model_name: str, fixed_hp: dict[str, Any],
                augmentations: list[str] = (), bn_momentum: float | None = None,
                ) -> tuple[keras.Model, dict[str, Any]]:
    """Return the model and the hyperparameter values it was built with.

    ``bn_momentum`` (see ``comp.training.batchnorm``) replaces the momentum of every
    BatchNormalization layer, nested ones included; None keeps the plugin's own.
    """
    plugin = MODELS.load(model_name)
    if fixed_hp:
        # A probe build with defaults lists the plugin's knobs (public keras-tuner API only).
        probe = kt.HyperParameters()
        plugin(InputSpec(input_spec.shape), task, probe)
        knobs = [p.name for p in probe.space]
        for name in sorted(fixed_hp):
            if name not in knobs:
                close = difflib.get_close_matches(name, knobs, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"its knobs: {', '.join(knobs) or 'none'}"
                raise ConfigError(f"model.hp.{name}: model plugin '{model_name}' has no such hyperparameter; {hint}")
    hp = kt.HyperParameters()
    for name, value in fixed_hp.items():
        hp.Fixed(name, value)
    inputs = keras.Input(shape=input_spec.shape, dtype="uint8", name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="scale")(inputs)
    for aug_name in augmentations:
        aug = AUGMENTATIONS.load(aug_name)
        if task.kind not in aug.tasks:
            raise ConfigError(
                f"augmentation '{aug_name}' does not preserve {task.kind} labels "
                f"(it is declared for {', '.join(aug.tasks)}); remove it from train.augmentations"
            )
        x = aug.build(input_spec)(x)
    body = plugin(input_spec, task, hp)
    if not isinstance(body, keras.Model):
        raise PluginError(
            f"model plugin '{model_name}' returned {type(body).__name__}, not a keras.Model; "
            f"{MODELS.info(model_name).where}"
        )
    outputs = body(x)
    model = keras.Model(inputs, outputs, name=model_name)
    if bn_momentum is not None:
        set_momentum(model, bn_momentum)  # before the first step traces the model
    return model, dict(hp.values)
