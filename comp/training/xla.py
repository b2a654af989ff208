"""Whether a fold's train step is compiled with XLA (``train.xla``)."""
from __future__ import annotations

import keras
import tensorflow as tf

# Keras's affine augmentation layers claim XLA support, but under TensorFlow they run
# ImageProjectiveTransformV3, which has no XLA kernel ("Detected unsupported operations",
# measured): auto leaves XLA off for models holding them rather than fail to compile.
XLA_UNSUPPORTED = (keras.layers.RandomTranslation, keras.layers.RandomRotation, keras.layers.RandomZoom)


def use_xla(setting: str, model: keras.Model) -> bool:
    """Whether to compile the train step with XLA: ``on``, ``off``, or ``auto``: Keras's rule
    for ``jit_compile="auto"`` on a GPU (every layer supports XLA, and op determinism is
    off), with the affine augmentation layers XLA cannot compile counted out. comp turns op
    determinism on (exact resume, reproducible runs), so ``auto`` stays off unless that is
    lifted: with it XLA cannot compile common ops (MaxPoolGrad: "Unimplemented", measured).
    A step that does not compile trains without XLA after one notice (``on`` included)."""
    if setting in ("on", "off"):
        return setting == "on"
    from comp.training.batchnorm import nested_layers

    return bool(tf.config.list_logical_devices("GPU")) and not op_determinism() and all(
        getattr(layer, "supports_jit", True) and not isinstance(layer, XLA_UNSUPPORTED)
        for layer in nested_layers(model))


def op_determinism() -> bool:
    from tensorflow.python.framework.config import is_op_determinism_enabled  # what Keras itself reads

    return bool(is_op_determinism_enabled())
