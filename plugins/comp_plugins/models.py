"""Built-in Keras model plugins: ``(input_spec, task, hp) -> keras.Model`` ending in ``task.head``."""
from __future__ import annotations

import keras
from keras import layers

from comp.api import IMAGE, TABULAR, min_rows, modalities, regularizers
from comp.layers import encode_table, table_inputs


def _conv_knobs(hp, shape) -> tuple[int, int, float, bool]:
    """The conv backbone's knobs: filters of the first block, blocks (by default as many as the
    input's size supports, ``default_blocks``), dropout, BatchNorm."""
    return (hp.Int("filters", 16, 128, step=16, default=32), hp.Int("blocks", 1, 4, default=default_blocks(shape)),
            hp.Float("dropout", 0.0, 0.6, step=0.05, default=0.25), hp.Boolean("batchnorm", default=True))


def default_blocks(shape) -> int:
    """Blocks until the last one works on a map of about 4-7 pixels a side (VGG's rule: pool
    until the map is small), at most 3: 8x8 digits and 8x32 street numbers get 2, 28x28 and
    larger images 3. Measured on 5,000 28x28 MNIST digits, 13 epochs a fold: 3 blocks OOF
    0.98525 against 2 blocks' 0.97475, at 1.37x the time an epoch (benchmarks/README.md)."""
    side = min(shape[:2]) if len(shape) >= 3 else 8
    blocks = 1
    while blocks < 3 and side // 2**blocks >= 4:
        blocks += 1
    return blocks


def _conv_blocks(x, filters: int, blocks: int, batchnorm: bool):
    """VGG-style blocks of two 3x3 convs (He-normal) and a 2x2 max pool, filters doubling."""
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
    return x


@modalities(IMAGE)
@regularizers(dropout=0.4)
def small_cnn(input_spec, task, hp) -> keras.Model:
    """A VGG-style CNN for small images: blocks of two 3x3 convs and max pooling, global
    average pooling, dropout, the task's head.

    Knobs: ``filters`` (first block; doubles each block), ``blocks``, ``dropout``,
    ``batchnorm`` (BatchNorm after each conv, before its ReLU; on by default: measured on
    4,000 MNIST digits it lifted OOF accuracy from 0.941 to 0.961 with nothing else changed). With
    Keras's momentum 0.99 the moving statistics of BatchNorm lag the weights for
    hundreds of steps on small competitions and mislead early stopping (docs/recipe.md 4);
    training sets a momentum suited to the steps per epoch (``train.bn_momentum``).
    """
    filters, blocks, dropout, batchnorm = _conv_knobs(hp, input_spec.shape)
    inputs = keras.Input(shape=input_spec.shape)
    x = _conv_blocks(inputs, filters, blocks, batchnorm)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, task.head(x), name="small_cnn")


@modalities(IMAGE)
@regularizers(dropout=0.4)
def seq_cnn(input_spec, task, hp) -> keras.Model:
    """A shared conv backbone for reading strings (street numbers): the same conv blocks as
    ``small_cnn``, then the feature map flattened (so each position of the string keeps
    its place) into a dense layer feeding the task's heads, one per character position.

    Knobs: ``filters``, ``blocks``, ``units`` (the shared dense layer), ``dropout``, ``batchnorm``.
    """
    filters, blocks, dropout, batchnorm = _conv_knobs(hp, input_spec.shape)
    units = hp.Int("units", 64, 1024, sampling="log", default=256)
    inputs = keras.Input(shape=input_spec.shape)
    x = _conv_blocks(inputs, filters, blocks, batchnorm)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(units, activation="relu", kernel_initializer="he_normal")(x)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, task.head(x), name="seq_cnn")


@modalities(IMAGE, TABULAR)
@regularizers(dropout=0.35)
# In the table portfolio from 10,000 rows: below, measured at budget=5m on three tables of
# 1,470-4,454 rows, it moved no held-back score (the blend leaned on the trees), and at
# budget=2m it took the searches' time (hpc -0.013 held back); on larger tables it took a
# third of the blend (diamonds' RMSE -1.6%; benchmarks/README.md, "The MLP funded by the run plan").
@min_rows(10_000)
def mlp(input_spec, task, hp) -> keras.Model:
    """A fully connected network: on flattened images, or on table columns encoded inside
    the model (numbers robust-scaled, smoothly clipped and embedded periodically, with
    missing-value indicators; embedded categories; see ``comp.layers.encode_table``), so the
    saved model takes the raw columns. In the default table portfolio from 10,000 rows.

    Knobs: ``units``, ``depth``, ``dropout``, ``batchnorm`` (after each dense layer); on
    tables ``numbers`` (``periodic``: robust-scaled, smooth-clipped numbers with periodic
    embeddings; ``standard``: standardised) and ``frequency_scale`` (the embeddings' initial
    frequencies' spread).
    """
    units = hp.Int("units", 32, 1024, sampling="log", default=256)
    depth = hp.Int("depth", 1, 4, default=2)
    dropout = hp.Float("dropout", 0.0, 0.6, step=0.05, default=0.2)
    batchnorm = hp.Boolean("batchnorm", default=False)

    if input_spec.modality == TABULAR:
        inputs = table_inputs(input_spec)
        numbers = hp.Choice("numbers", ["periodic", "standard"], default="periodic")
        scale = hp.Float("frequency_scale", 0.01, 1.0, sampling="log", default=0.1) if numbers == "periodic" else 0.1
        x = encode_table(inputs, input_spec, numbers=numbers, scale=scale)
    else:
        inputs = keras.Input(shape=input_spec.shape)
        x = layers.Flatten()(inputs)
    for _ in range(depth):
        x = layers.Dense(units, use_bias=not batchnorm, kernel_initializer="he_normal")(x)
        if batchnorm:
            x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, task.head(x), name="mlp")
