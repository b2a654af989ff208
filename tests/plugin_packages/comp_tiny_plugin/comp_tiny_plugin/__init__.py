"""Model and augmentation plugins written the way a third party would write them."""
import keras

from comp.api import Augmentation


def tiny_mlp(input_spec, task, hp):
    units = hp.Int("units", 8, 128, default=32)
    inputs = keras.Input(shape=input_spec.shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs, task.head(x), name="tiny_mlp")


def wide_fails(input_spec, task, hp):
    """tiny_mlp that cannot be built wider than 24 units: a search over its range has trials that raise."""
    units = hp.Int("units", 8, 128, default=16)
    if units > 24:
        raise RuntimeError(f"wide_fails: {units} units is more than this model can build")
    return tiny_mlp(input_spec, task, hp)


def _invert(input_spec, strength):
    # Inverts a random `strength` share of the images in a batch (training only).
    return keras.layers.RandomInvert(factor=strength, value_range=(0, 1), name="aug_invert")


invert = Augmentation(build=_invert, tasks=("classification",), tta_safe=False,
                      description="invert the grey levels", strength=0.5)
