"""Keras building blocks for model plugins: raw table columns in, one feature vector out.

Preprocessing lives inside the model (Keras's Normalization, StringLookup and Embedding
layers, fit on a fold's training rows through ``InputSpec``), so a saved model takes the
raw columns. The two small layers below are ours because Keras has no layer for missing
values; they are registered for serialisation and load with ``safe_mode=True``.
"""
from __future__ import annotations

import keras

from comp.api import InputSpec


@keras.saving.register_keras_serializable(package="comp")
class IsMissing(keras.layers.Layer):
    """1.0 where the input is NaN, else 0.0."""

    def call(self, x):
        return keras.ops.cast(keras.ops.isnan(x), "float32")


@keras.saving.register_keras_serializable(package="comp")
class FillMissing(keras.layers.Layer):
    """NaN -> 0 (after standardisation: the column mean)."""

    def call(self, x):
        return keras.ops.where(keras.ops.isnan(x), keras.ops.zeros_like(x), x)


def table_inputs(spec: InputSpec) -> dict[str, keras.KerasTensor]:
    """One named Keras input per raw column: float32 numbers, strings for categories."""
    return {c.key: keras.Input(shape=(1,), dtype="float32" if c.kind == "numeric" else "string", name=c.key)
            for c in spec.columns}


def embedding_size(categories: int) -> int:
    """fastai's rule of thumb for categorical embeddings, capped at 16."""
    return int(min(16, round(1.6 * categories ** 0.56)))


def encode_table(inputs: dict, spec: InputSpec):
    """Standardised numbers (missing -> 0, plus a 0/1 indicator where values go missing) and
    one embedding per categorical column (unseen or rare categories share one slot), concatenated."""
    parts = []
    for column in spec.columns:
        x = inputs[column.key]
        if column.kind == "numeric":
            if column.missing:
                parts.append(IsMissing(name=f"{column.key}_missing")(x))
            x = keras.layers.Normalization(mean=column.mean, variance=column.variance, name=f"{column.key}_norm")(x)
            parts.append(FillMissing(name=f"{column.key}_fill")(x))
        else:
            vocabulary = list(column.vocabulary) or [""]
            index = keras.layers.StringLookup(vocabulary=vocabulary, num_oov_indices=1, mask_token=None,
                                              name=f"{column.key}_lookup")(x)
            size = len(vocabulary) + 1
            vector = keras.layers.Embedding(size, embedding_size(size), name=f"{column.key}_embed")(index)
            parts.append(keras.layers.Flatten(name=f"{column.key}_flat")(vector))
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="table_features")(parts)

