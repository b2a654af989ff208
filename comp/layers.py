"""Keras building blocks for model plugins: raw table columns in, one feature vector out.

Preprocessing lives inside the model (Keras's Normalization, StringLookup and Embedding
layers, fit on a fold's training rows through ``InputSpec``), so a saved model takes the
raw columns. The small layers below are ours because Keras has no layer for missing
values, smooth clipping or periodic embeddings of numbers; they are registered for
serialisation and load with ``safe_mode=True``.
"""
from __future__ import annotations

import math

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


@keras.saving.register_keras_serializable(package="comp")
class SmoothClip(keras.layers.Layer):
    """x / sqrt(1 + (x / bound)^2): about x near 0, bounded by +-``bound``. RealMLP's (arXiv
    2407.04491) clipping of robust-scaled numbers: an outlier keeps its order among the rows
    without taking over a layer's input."""

    def __init__(self, bound: float = 3.0, **kwargs):
        super().__init__(**kwargs)
        self.bound = float(bound)

    def call(self, x):
        # clipped first: (x / bound)^2 overflows to inf (and the result to 0) for huge x
        x = keras.ops.clip(x, -1e6 * self.bound, 1e6 * self.bound)
        return x / keras.ops.sqrt(1.0 + keras.ops.square(x / self.bound))

    def get_config(self):
        return {**super().get_config(), "bound": self.bound}


@keras.saving.register_keras_serializable(package="comp")
class PeriodicEmbedding(keras.layers.Layer):
    """Each of n numbers -> ReLU(W_i [cos(2 pi f_i x), sin(2 pi f_i x)] + b_i), ``dims`` values
    per number, with ``frequencies`` trainable frequencies f_i per number drawn from
    N(0, ``scale``^2): the PLR embedding of Gorishniy et al. (arXiv 2203.05556), which lets an
    MLP learn the sharp, non-monotone functions of one column that trees find easily.
    (batch, n) -> (batch, n * dims)."""

    def __init__(self, frequencies: int = 16, dims: int = 8, scale: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.frequencies, self.dims, self.scale = int(frequencies), int(dims), float(scale)

    def build(self, shape):
        n, k = int(shape[-1]), self.frequencies
        self.frequency = self.add_weight(shape=(n, k), initializer=keras.initializers.RandomNormal(stddev=self.scale),
                                         name="frequency")
        bound = 1.0 / (2 * k) ** 0.5  # a linear layer's default range for 2k inputs
        self.kernel = self.add_weight(shape=(n, 2 * k, self.dims), name="kernel",
                                      initializer=keras.initializers.RandomUniform(-bound, bound))
        self.bias = self.add_weight(shape=(n, self.dims), name="bias",
                                    initializer=keras.initializers.RandomUniform(-bound, bound))

    def call(self, x):
        angle = 2.0 * math.pi * keras.ops.expand_dims(x, -1) * self.frequency  # (batch, n, k)
        periodic = keras.ops.concatenate([keras.ops.cos(angle), keras.ops.sin(angle)], axis=-1)
        y = keras.ops.relu(keras.ops.einsum("bnf,nfd->bnd", periodic, self.kernel) + self.bias)
        return keras.ops.reshape(y, (-1, y.shape[1] * self.dims))

    def compute_output_shape(self, shape):
        return (shape[0], shape[-1] * self.dims)

    def get_config(self):
        return {**super().get_config(), "frequencies": self.frequencies, "dims": self.dims, "scale": self.scale}


def table_inputs(spec: InputSpec) -> dict[str, keras.KerasTensor]:
    """One named Keras input per raw column: float32 numbers, strings for categories."""
    return {c.key: keras.Input(shape=(1,), dtype="float32" if c.kind == "numeric" else "string", name=c.key)
            for c in spec.columns}


def embedding_size(categories: int) -> int:
    """fastai's rule of thumb for categorical embeddings, capped at 16."""
    return int(min(16, round(1.6 * categories ** 0.56)))


def encode_table(inputs: dict, spec: InputSpec, numbers: str = "standard", frequencies: int = 16, dims: int = 8,
                 scale: float = 0.1):
    """One feature vector from the raw columns: one embedding per categorical column (unseen
    or rare categories share one slot) and the numbers (missing -> 0, plus a 0/1 indicator
    where values go missing), concatenated.

    ``numbers``: ``standard`` (standardised by mean and variance) or ``periodic``: robust-scaled
    (median, spread of the middle half), smooth-clipped to +-3 (``SmoothClip``) and each also
    given ``dims`` values of a ``PeriodicEmbedding`` -- RealMLP's preprocessing (arXiv
    2407.04491) with Gorishniy et al.'s embeddings (arXiv 2203.05556)."""
    if numbers not in ("standard", "periodic"):
        raise ValueError(f"numbers={numbers!r}: use standard or periodic")
    # The numbers are prepared in float32 whatever the training's policy: under mixed_float16
    # (on a GPU) a raw price above 65,504 would become inf, then missing, then the median.
    exact = {"dtype": "float32"}
    parts, scaled = [], []
    for column in spec.columns:
        x = inputs[column.key]
        if column.kind == "numeric":
            if column.missing:
                parts.append(IsMissing(name=f"{column.key}_missing", **exact)(x))
            if numbers == "periodic":
                x = keras.layers.Normalization(mean=column.median, variance=column.spread ** 2,
                                               name=f"{column.key}_norm", **exact)(x)
                # "-": a name no column key has (keys are letters, digits and _), so none clashes
                x = SmoothClip(name=f"{column.key}-clip", **exact)(x)
            else:
                x = keras.layers.Normalization(mean=column.mean, variance=column.variance, name=f"{column.key}_norm",
                                               **exact)(x)
            scaled.append(FillMissing(name=f"{column.key}_fill", **exact)(x))
            parts.append(scaled[-1])
        else:
            vocabulary = list(column.vocabulary) or [""]
            index = keras.layers.StringLookup(vocabulary=vocabulary, num_oov_indices=1, mask_token=None,
                                              name=f"{column.key}_lookup")(x)
            size = len(vocabulary) + 1
            vector = keras.layers.Embedding(size, embedding_size(size), name=f"{column.key}_embed")(index)
            parts.append(keras.layers.Flatten(name=f"{column.key}_flat")(vector))
    if numbers == "periodic" and scaled:
        x = scaled[0] if len(scaled) == 1 else keras.layers.Concatenate(name="table-numbers", **exact)(scaled)
        parts.append(PeriodicEmbedding(frequencies, dims, scale, name="table-numbers-periodic", **exact)(x))
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="table_features")(parts)


@keras.saving.register_keras_serializable(package="comp")
class AffineView(keras.layers.Layer):
    """One fixed geometric view of a batch of images for test-time augmentation: the
    projective ``transform`` of ``keras.ops.image.affine_transform`` (output point -> input
    point), zero fill, bilinear; integer images come back rounded to their own dtype. The
    same in every call (unlike Keras's random layers), and serialisable, so an exported
    ensemble carries its views."""

    def __init__(self, transform, **kwargs):
        super().__init__(**kwargs)
        self.transform = [float(v) for v in transform]

    def call(self, images):
        dtype = images.dtype
        x = keras.ops.cast(images, "float32")
        batch = keras.ops.shape(x)[0]
        transform = keras.ops.tile(keras.ops.convert_to_tensor([self.transform], "float32"), [batch, 1])
        y = keras.ops.image.affine_transform(x, transform, interpolation="bilinear", fill_mode="constant")
        if "int" in str(dtype):
            y = keras.ops.round(y)
        return keras.ops.cast(y, dtype)

    def get_config(self):
        return {**super().get_config(), "transform": self.transform}


def affine_view(name: str, height: int, width: int, *, dx: float = 0.0, dy: float = 0.0, degrees: float = 0.0,
                zoom: float = 1.0, mirror: bool = False) -> AffineView:
    """A view that mirrors, zooms by ``zoom`` (> 1: in), rotates by ``degrees`` and shifts the
    content by (``dx``, ``dy``) pixels, about the image centre."""
    import math

    cx, cy = (width - 1) / 2, (height - 1) / 2
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    m = -1.0 if mirror else 1.0
    # forward: output = centre + shift + zoom R(degrees) M (input - centre), M mirroring x;
    # affine_transform wants the inverse: input = centre + M R(-degrees) (output - centre - shift) / zoom
    a0, a1 = m * c / zoom, m * s / zoom
    b0, b1 = -s / zoom, c / zoom
    ox, oy = cx + dx, cy + dy
    a2 = cx - a0 * ox - a1 * oy
    b2 = cy - b0 * ox - b1 * oy
    return AffineView([a0, a1, a2, b0, b1, b2, 0.0, 0.0], name=name)


@keras.saving.register_keras_serializable(package="comp")
class WeightedSum(keras.layers.Layer):
    """``sum(w_i * x_i)`` over a list of same-shaped tensors: an exported ensemble's blend."""

    def __init__(self, weights, **kwargs):
        super().__init__(**kwargs)
        self.blend_weights = [float(w) for w in weights]

    def call(self, inputs):
        total = keras.ops.cast(inputs[0], "float32") * self.blend_weights[0]
        for x, w in zip(inputs[1:], self.blend_weights[1:]):
            total = total + keras.ops.cast(x, "float32") * w
        return total

    def get_config(self):
        return {**super().get_config(), "weights": self.blend_weights}
