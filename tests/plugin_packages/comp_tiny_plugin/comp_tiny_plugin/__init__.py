"""A model plugin written the way a third party would write one."""
import keras


def tiny_mlp(input_spec, task, hp):
    units = hp.Int("units", 8, 128, default=32)
    inputs = keras.Input(shape=input_spec.shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(units, activation="relu")(x)
    return keras.Model(inputs, task.head(x), name="tiny_mlp")
