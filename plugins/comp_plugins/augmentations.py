"""Built-in augmentation plugins: Keras preprocessing layers in the graph, active only in
training, on images scaled to [0, 1].

Each has one strength knob (``train.augmentations=[shift:0.15,rotate:5]``). None of the
defaults flips: a mirrored digit or character is another label (docs/recipe.md 6); ``flip``
and ``vflip`` exist for photographs and scans, where a mirror image keeps its label. They
train only when named (or kept by stage regularize); their test-time views are probed on
every image competition, and kept where they raise the OOF score (stage ensemble).
"""
from __future__ import annotations

import tensorflow as tf
from keras import layers

from comp.api import Augmentation
from comp.layers import affine_view

# Small shifts and contrast changes keep what an image shows: its class, its labels, a value
# read from it, the characters written in it.
IMAGE_TASKS = ("classification", "multilabel", "regression", "sequence")
# Rotating or zooming a strip of characters cuts off the ones at its ends, so the string
# changes: measured on the street demo (3 folds, the defaults), shift alone gave exact match
# 0.937, no augmentation 0.910, shift + rotate + zoom 0.812. Mirroring reverses it.
WHOLE_IMAGE_TASKS = ("classification", "multilabel", "regression")
UNIT = (0.0, 1.0)  # the value range of the scaled images


# Test-time views: each training augmentation at half its strength, both ways. A view is a
# fixed transform of the raw input batch, so one pass per view predicts a whole batch.
def _size(spec) -> tuple[int, int]:
    return int(spec.shape[0]), int(spec.shape[1])


def _shift_views(spec, s):
    h, w = _size(spec)
    dx, dy = max(1, round(s / 2 * w)), max(1, round(s / 2 * h))
    return [affine_view("shift_right", h, w, dx=dx), affine_view("shift_left", h, w, dx=-dx),
            affine_view("shift_down", h, w, dy=dy), affine_view("shift_up", h, w, dy=-dy)]


def _rotate_views(spec, s):
    h, w = _size(spec)
    return [affine_view("rotate_ccw", h, w, degrees=s / 2), affine_view("rotate_cw", h, w, degrees=-s / 2)]


def _zoom_views(spec, s):
    h, w = _size(spec)
    return [affine_view("zoom_in", h, w, zoom=1 + s / 2), affine_view("zoom_out", h, w, zoom=1 / (1 + s / 2))]

shift = Augmentation(
    build=lambda spec, s: layers.RandomTranslation(s, s, fill_mode="constant", name="aug_shift"),
    tasks=IMAGE_TASKS,
    tta_safe=True,
    views=_shift_views,
    description="translate by up to strength x height and width",
    default=True,
    strength=0.1,
    strength_range=(0.0, 0.5),
    strength_unit="fraction of the size",
)

rotate = Augmentation(
    build=lambda spec, s: layers.RandomRotation(s / 360, fill_mode="constant", name="aug_rotate"),
    tasks=WHOLE_IMAGE_TASKS,
    tta_safe=True,
    views=_rotate_views,
    description="rotate by up to strength degrees either way",
    default=True,
    strength=10.0,
    strength_range=(0.0, 180.0),
    strength_unit="degrees",
)

zoom = Augmentation(
    build=lambda spec, s: layers.RandomZoom(s, fill_mode="constant", name="aug_zoom"),
    tasks=WHOLE_IMAGE_TASKS,
    tta_safe=True,
    views=_zoom_views,
    description="zoom in or out by up to strength x the size",
    default=True,
    strength=0.1,
    strength_range=(0.0, 0.9),
    strength_unit="fraction of the size",
)

flip = Augmentation(
    build=lambda spec: layers.RandomFlip("horizontal", name="aug_flip"),
    tasks=WHOLE_IMAGE_TASKS,
    tta_safe=True,
    views=lambda spec: [affine_view("flip", *_size(spec), mirror=True)],
    description="mirror left-right, for images whose mirror keeps the label (photos, scans; never digits or text)",
)

vflip = Augmentation(
    build=lambda spec: layers.RandomFlip("vertical", name="aug_vflip"),
    tasks=WHOLE_IMAGE_TASKS,
    tta_safe=True,
    # mirrored left-right, then turned half a turn: mirrored top-bottom
    views=lambda spec: [affine_view("vflip", *_size(spec), mirror=True, degrees=180.0)],
    description="mirror top-bottom, for images with no up (micrographs, satellite tiles; never digits or text)",
)

def _pixel_values(layer, name: str, description: str, unit: str) -> Augmentation:
    """A change of pixel values (not of where they are): every image kind's labels survive it."""
    return Augmentation(build=lambda spec, s: layer(s, value_range=UNIT, name=f"aug_{name}"), tasks=IMAGE_TASKS,
                        tta_safe=False, description=description, strength=0.2, strength_unit=unit)


brightness = _pixel_values(layers.RandomBrightness, "brightness", "add up to strength x the value range to every pixel",
                           "fraction of the value range")
contrast = _pixel_values(layers.RandomContrast, "contrast", "scale contrast around the mean by up to strength",
                         "fraction")

erase = Augmentation(
    build=lambda spec, s: layers.RandomErasing(factor=1.0, scale=(0.02, max(s, 0.02)), fill_value=0.0,
                                               value_range=UNIT, name="aug_erase"),
    tasks=WHOLE_IMAGE_TASKS,
    tta_safe=False,
    description="random erasing (cutout): blank a rectangle of up to strength x the area",
    strength=0.2,
    strength_range=(0.02, 0.5),
    strength_unit="fraction of the area",
)


# Batch-level mixing. Keras's MixUp and CutMix layers mix one-hot labels themselves and keep
# their partner and weight to themselves; comp mixes the loss instead (one code path for
# every task's targets: class indices, label vectors, values), so it needs both: hand-written,
# with stateless random ops so a resumed run draws the same mixes.
MIXING_TASKS = ("classification", "multilabel")


def _beta(alpha: float, seed) -> tf.Tensor:
    """One draw of Beta(alpha, alpha) as the ratio of two Gamma draws."""
    g = tf.random.stateless_gamma([2], seed, alpha=alpha)
    return g[0] / (g[0] + g[1])


def _partner(images, seed) -> tf.Tensor:
    rows = tf.shape(images)[0]
    return tf.argsort(tf.random.stateless_uniform([rows], seed))


def _as_input(mixed, images):
    return tf.cast(tf.round(mixed), images.dtype) if images.dtype.is_integer else tf.cast(mixed, images.dtype)


def _mixup(spec, alpha: float):
    def mix(images, seed):
        seeds = tf.random.experimental.stateless_split(seed, 2)
        weight = _beta(alpha, seeds[0])
        partner = _partner(images, seeds[1])
        x = tf.cast(images, tf.float32)
        return _as_input(weight * x + (1 - weight) * tf.gather(x, partner), images), partner, weight

    return mix


def _cutmix(spec, alpha: float):
    def mix(images, seed):
        seeds = tf.random.experimental.stateless_split(seed, 3)
        lam = _beta(alpha, seeds[0])
        partner = _partner(images, seeds[1])
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
        side = tf.sqrt(1.0 - lam)
        centre = tf.random.stateless_uniform([2], seeds[2]) * tf.stack([h, w])
        top = tf.cast(tf.clip_by_value(centre[0] - side * h / 2, 0, h), tf.int32)
        bottom = tf.cast(tf.clip_by_value(centre[0] + side * h / 2, 0, h), tf.int32)
        left = tf.cast(tf.clip_by_value(centre[1] - side * w / 2, 0, w), tf.int32)
        right = tf.cast(tf.clip_by_value(centre[1] + side * w / 2, 0, w), tf.int32)
        rows = tf.range(height)[:, None]
        cols = tf.range(width)[None, :]
        box = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
        mixed = tf.where(box[None, :, :, None], tf.gather(images, partner), images)
        # The labels' weight is the share of the image kept, after clipping at the borders.
        weight = 1.0 - tf.reduce_mean(tf.cast(box, tf.float32))
        return mixed, partner, weight

    return mix


mixup = Augmentation(
    build=_mixup,
    tasks=MIXING_TASKS + ("regression",),
    tta_safe=False,
    description="mixup: blend pairs of images and their labels, weight ~ Beta(strength, strength)",
    strength=0.2,
    strength_range=(0.01, 10.0),
    strength_unit="Beta alpha",
    batch=True,
)

cutmix = Augmentation(
    build=_cutmix,
    tasks=MIXING_TASKS,
    tta_safe=False,
    description="cutmix: paste a box from another image, labels weighted by area, area ~ Beta(strength, strength)",
    strength=1.0,
    strength_range=(0.01, 10.0),
    strength_unit="Beta alpha",
    batch=True,
)
