"""Pick the tf.distribute strategy for the devices at hand."""
from __future__ import annotations

import tensorflow as tf

from comp.errors import ConfigError


def get_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """auto: several GPUs -> MirroredStrategy, one GPU -> OneDeviceStrategy, else default."""
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device" if gpus else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raise ConfigError(f"train.strategy={name!r}: use auto, default, one_device or mirrored")
