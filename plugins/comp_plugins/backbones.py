"""Pretrained backbones from ``keras.applications``, fine-tuned (docs/recipe.md, "Starting from
pretrained weights"): the image scaled to the backbone's resolution, grey made three
channels, the backbone's own preprocessing, the backbone without its top (average pooled,
BatchNorm frozen), dropout and the task's head. Inside the model, so a saved
fold model takes the raw images.

Knobs: ``weights`` (``imagenet``: the file Keras keeps in ``$KERAS_HOME/models``; a path to a
weights file of the backbone without its top; or ``none``), ``resolution`` (the shorter
side the image is scaled to), ``frozen`` (the backbone never trains: its features feed the
head, and a step costs the backbone's forward pass only), ``frozen_epochs`` (epochs the head
learns alone before the backbone fine-tunes), ``lr_factor`` (the backbone's share of the LR
after that) and ``dropout``. Weights are only ever read
from disk, checked before any work (``comp.weights``). With ``weights=none`` the
architecture trains from scratch as a whole (its BatchNorm in training mode, one LR).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import keras
from keras import layers

from comp.api import IMAGE, modalities, preflight, pretrained, regularizers
from comp.weights import IMAGENET, load_checked, resolve

MIN_SIDE = 32  # the smallest input every backbone here takes


@dataclass(frozen=True)
class Backbone:
    """A ``keras.applications`` architecture and the input range its weights expect."""

    name: str
    build: Callable[..., keras.Model]
    scale: float  # [0, 1] images times this, plus offset: what the backbone's first layer expects
    offset: float = 0.0
    options: tuple[tuple[str, Any], ...] = ()  # more keyword arguments of ``build``


def _knobs(hp, shape) -> tuple[str, int, bool, int, float, float]:
    side = min(shape[:2]) if len(shape) >= 3 else MIN_SIDE
    return (hp.Fixed("weights", IMAGENET),
            hp.Int("resolution", MIN_SIDE, 512, default=min(max(side, MIN_SIDE), 512)),
            hp.Boolean("frozen", default=False),
            hp.Int("frozen_epochs", 0, 10, default=1),
            hp.Float("lr_factor", 0.01, 1.0, sampling="log", default=0.1),
            hp.Float("dropout", 0.0, 0.6, step=0.05, default=0.2))


def _backbone(spec: Backbone, shape: tuple[int, int], setting: str) -> tuple[keras.Model, bool]:
    """(the backbone at ``shape`` (height, width), whether it holds weights loaded from
    ``setting``'s file)."""
    path = resolve(spec.name, spec.build, setting)
    net = spec.build(include_top=False, weights=None, input_shape=(*shape, 3), pooling="avg", **dict(spec.options))
    if path:
        load_checked(net, path, setting)
    return net, bool(path)


def _scaled_shape(shape, resolution: int) -> tuple[int, int]:
    """(height, width) with the shorter side at ``resolution``, the aspect kept."""
    height, width = shape[:2]
    factor = resolution / min(height, width)
    return max(MIN_SIDE, round(height * factor)), max(MIN_SIDE, round(width * factor))


def _plugin(spec: Backbone) -> Callable:
    def check(hp: dict[str, Any]) -> None:  # before any work: the file there and readable
        _backbone(spec, (MIN_SIDE, MIN_SIDE), hp.get("weights", IMAGENET))
        keras.backend.clear_session()

    @modalities(IMAGE)
    @regularizers(dropout=0.4)
    @preflight(check)
    def plugin(input_spec, task, hp) -> keras.Model:
        weights, resolution, frozen, frozen_epochs, lr_factor, dropout = _knobs(hp, input_spec.shape)
        inputs = keras.Input(shape=input_spec.shape)
        x = inputs
        if input_spec.shape[-1] == 1:  # grey: the backbone learnt from three channels
            x = layers.Concatenate()([x, x, x])
        shape = _scaled_shape(input_spec.shape, resolution)
        if shape != tuple(input_spec.shape[:2]):
            x = layers.Resizing(*shape)(x)
        x = layers.Rescaling(spec.scale, offset=spec.offset)(x)
        net, loaded = _backbone(spec, shape, weights)
        if loaded and frozen:  # features only: no step goes back through the backbone
            net.trainable = False
            x = net(x)
        elif loaded:  # fine-tuned, its BatchNorm frozen with the statistics it learnt
            x = pretrained(net, lr_factor, frozen_epochs)(x)
        else:  # weights=none: the architecture trained from scratch like any other network
            x = net(x)
        x = layers.Dropout(dropout)(x)
        return keras.Model(inputs, task.head(x), name=spec.name)

    plugin.__name__ = plugin.__qualname__ = spec.name
    plugin.__doc__ = f"keras.applications {spec.build.__name__}, pretrained, fine-tuned. " + __doc__.split("\n\n")[1]
    return plugin


A = keras.applications
# MobileNetV3, EfficientNetV2 and ConvNeXt scale their input inside (include_preprocessing):
# they take [0, 255]; ResNetV2 takes [-1, 1].
mobilenet_v3_small = _plugin(Backbone("mobilenet_v3_small", A.MobileNetV3Small, 255.0,
                                      options=(("include_preprocessing", True),)))
efficientnet_v2_b0 = _plugin(Backbone("efficientnet_v2_b0", A.EfficientNetV2B0, 255.0,
                                      options=(("include_preprocessing", True),)))
convnext_tiny = _plugin(Backbone("convnext_tiny", A.ConvNeXtTiny, 255.0, options=(("include_preprocessing", True),)))
resnet50_v2 = _plugin(Backbone("resnet50_v2", A.ResNet50V2, 2.0, -1.0))
