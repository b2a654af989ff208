"""Assemble a model from a plugin: inputs -> (scaling, augmentation) -> plugin -> task head.

The modality gives the first layers (``comp.modalities``): images enter as uint8 and are
scaled to [0, 1], then augmented inside the graph; table columns enter raw (one named input
per column) and the plugin does its own preprocessing with Keras layers (``comp.layers``). A non-Keras plugin (``comp.api.EstimatorModel``) gets
an unfitted estimator built here instead.
"""
from __future__ import annotations

import dataclasses

import difflib
from typing import Any

import keras
import keras_tuner as kt

from comp.api import EstimatorModel, InputSpec, plugin_modalities
from comp.errors import ConfigError, PluginError
from comp.modalities import MODALITIES
from comp.augmentation import split_policy
from comp.registry import MODELS
from comp.training.batchnorm import set_momentum
from comp.weights import probing


def load_plugin(model_name: str, input_spec: InputSpec, task: Any) -> Any:
    """The model plugin, checked against the input modality and the task kind."""
    plugin = MODELS.load(model_name)
    supported = plugin.modalities if isinstance(plugin, EstimatorModel) else plugin_modalities(plugin)
    if input_spec.modality not in supported:
        raise ConfigError(f"model={model_name} takes {' or '.join(supported)} inputs, but this competition is "
                          f"{input_spec.modality}; pick another model (e.g. model={task.default_models.get(input_spec.modality, 'mlp')})")
    if isinstance(plugin, EstimatorModel) and task.kind not in plugin.tasks:
        raise ConfigError(f"model={model_name} cannot learn task {task.kind} (it learns {', '.join(plugin.tasks)}); "
                          "pick a Keras model")
    return plugin


def is_estimator(model_name: str) -> bool:
    return isinstance(MODELS.load(model_name), EstimatorModel)


def _check_knobs(plugin: Any, model_name: str, input_spec: InputSpec, task: Any, fixed_hp: dict[str, Any]) -> None:
    """Unknown names and values outside the plugin's own types and ranges are a ConfigError.

    A probe build with defaults lists the plugin's knobs (public keras-tuner API only). It
    creates layers, so for a Keras plugin it runs before any work (``check_hyperparameters``,
    which then clears the session), not beside the model being trained, whose layer names
    would shift."""
    probe = kt.HyperParameters()
    with probing():
        (plugin.build if isinstance(plugin, EstimatorModel) else plugin)(input_spec, task, probe)
    knobs = {p.name: p for p in probe.space}
    for name in sorted(fixed_hp):
        if name not in knobs:
            close = difflib.get_close_matches(name, list(knobs), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"its knobs: {', '.join(knobs) or 'none'}"
            raise ConfigError(f"model.hp.{name}: model plugin '{model_name}' has no such hyperparameter; {hint}")
        wanted = _accepts(knobs[name], fixed_hp[name])
        if wanted:
            raise ConfigError(f"model.hp.{name}={fixed_hp[name]!r}: model plugin '{model_name}' takes {wanted}")


def _fixed(fixed_hp: dict[str, Any]) -> kt.HyperParameters:
    hp = kt.HyperParameters()
    for name, value in fixed_hp.items():
        hp.Fixed(name, value)
    return hp


def _accepts(knob: Any, value: Any) -> str | None:
    """None when ``value`` fits the keras-tuner hyperparameter ``knob``, else what it takes."""
    kind, config = type(knob).__name__, knob.get_config()
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "Int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        low, high = config["min_value"], config["max_value"]
        return None if ok and low <= value <= high else f"a whole number in {low}..{high}"
    if kind == "Float":
        low, high = config["min_value"], config["max_value"]
        return None if number and low <= value <= high else f"a number in {low:g}..{high:g}"
    if kind == "Boolean":
        return None if isinstance(value, bool) else "true or false"
    if kind == "Choice":
        return None if value in config["values"] else f"one of {', '.join(map(str, config['values']))}"
    return None


def plugin_space(model_name: str, modality: str, task: Any, rows: int = 0) -> list[Any]:
    """The plugin's own knobs (keras-tuner hyperparameters with their ranges and defaults),
    from a probe build on a stand-in input of ``rows`` training rows (a plugin's defaults may
    depend on them; public keras-tuner API only)."""
    spec = dataclasses.replace(MODALITIES[modality].probe_spec(), rows=int(rows))
    plugin = load_plugin(model_name, spec, task)
    probe = kt.HyperParameters()
    try:
        with probing():
            (plugin.build if isinstance(plugin, EstimatorModel) else plugin)(spec, task, probe)
    finally:
        keras.backend.clear_session()
    return list(probe.space)


def check_hyperparameters(model_name: str, modality: str, task: Any, fixed_hp: dict[str, Any]) -> None:
    """Check ``model.hp`` against the plugin's own knobs, types and ranges before any work,
    and run the plugin's own check (``comp.api.preflight``: a weights file there and readable)."""
    spec = MODALITIES[modality].probe_spec()
    plugin = load_plugin(model_name, spec, task)
    if not fixed_hp:
        if getattr(plugin, "preflight", None):
            plugin.preflight({})
        return
    try:
        _check_knobs(plugin, model_name, spec, task, fixed_hp)
    finally:
        keras.backend.clear_session()
    if getattr(plugin, "preflight", None):  # after the knobs: a misspelt one is named first
        plugin.preflight(dict(fixed_hp))


def build_estimator(input_spec: InputSpec, task: Any, model_name: str,
                    fixed_hp: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A factory of unfitted estimators from a non-Keras plugin, and its hyperparameter values."""
    plugin = load_plugin(model_name, input_spec, task)
    if fixed_hp:
        _check_knobs(plugin, model_name, input_spec, task, fixed_hp)
    hp = _fixed(fixed_hp)
    plugin.build(input_spec, task, hp)  # fills hp with the defaults of every knob
    return (lambda: plugin.build(input_spec, task, hp)), dict(hp.values)


def build_model(input_spec: InputSpec, task: Any, model_name: str, fixed_hp: dict[str, Any],
                augmentations: list[str] | tuple[str, ...] = (), bn_momentum: float | None = None,
                ) -> tuple[keras.Model, dict[str, Any]]:
    """Return the Keras model and the hyperparameter values it was built with.

    ``bn_momentum`` (see ``comp.training.batchnorm``) replaces the momentum of every
    BatchNormalization layer, nested ones included; None keeps the plugin's own.
    """
    plugin = load_plugin(model_name, input_spec, task)
    if isinstance(plugin, EstimatorModel):
        raise ConfigError(f"model={model_name} is not a Keras model; this step needs one")
    hp = _fixed(fixed_hp)  # checked before any work (check_hyperparameters)
    inputs, x = MODALITIES[input_spec.modality].model_inputs(input_spec)
    for layer in split_policy(augmentations, input_spec, task.kind)[0]:  # batch mixing is the loop's
        x = layer(x)
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
