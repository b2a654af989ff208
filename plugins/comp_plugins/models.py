"""Built-in model plugins: ``(input_spec, task, hp) -> keras.Model`` ending in ``task.head``."""
from __future__ import annotations

import keras
from keras import layers


def small_cnn(input_spec, task, hp) -> keras.Model:
    """A VGG-style CNN for small images: blocks of two 3x3 convs (He-normal) and max pooling.

    Knobs: ``filters`` (first block; doubles each block), ``blocks``, ``dropout``,
    ``batchnorm`` (BatchNorm after each conv, before its ReLU; off by default). With
    Keras's momentum 0.99 the moving statistics of BatchNorm lag the weights for
    hundreds of steps on small competitions and mislead early stopping (RECIPE.md 4);
    training sets a momentum suited to the steps per epoch (``train.bn_momentum``).
    """
    filters = hp.Int("filters", 16, 128, step=16, default=32)
    blocks = hp.Int("blocks", 1, 4, default=2)
    dropout = hp.Float("dropout", 0.0, 0.6, step=0.05, default=0.25)
    batchnorm = hp.Boolean("batchnorm", default=False)

    inputs = keras.Input(shape=input_spec.shape)
    x = inputs
    for b in range(blocks):
        for _ in range(2):
            if batchnorm:  # the conv's bias would duplicate BatchNorm's beta
                x = layers.Conv2D(filters * 2**b, 3, padding="same", use_bias=False,
                                  kernel_initializer="he_normal")(x)
                x = layers.BatchNormalization()(x)
                x = layers.ReLU()(x)
            else:
                x = layers.Conv2D(filters * 2**b, 3, padding="same", activation="relu",
                                  kernel_initializer="he_normal")(x)
        if min(x.shape[1], x.shape[2]) >= 4:  # keep at least 2x2 for the last block
            x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, task.head(x), name="small_cnn")


def mlp(input_spec, task, hp) -> keras.Model:
    """A fully connected network on the flattened image: the simplest honest baseline."""
    units = hp.Int("units", 32, 1024, sampling="log", default=256)
    depth = hp.Int("depth", 1, 4, default=2)
    dropout = hp.Float("dropout", 0.0, 0.6, step=0.05, default=0.2)

    inputs = keras.Input(shape=input_spec.shape)
    x = layers.Flatten()(inputs)
    for _ in range(depth):
        x = layers.Dense(units, activation="relu", kernel_initializer="he_normal")(x)
        x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, task.head(x), name="mlp")
