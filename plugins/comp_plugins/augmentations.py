"""Built-in augmentation plugins: Keras preprocessing layers (active only in training).

None of them flips: a mirrored digit or character is another label (docs/recipe.md 6).
"""
from __future__ import annotations

from keras import layers

from comp.api import Augmentation

# Small shifts and contrast changes keep what an image shows: its class, its labels, a value
# read from it, the characters written in it.
IMAGE_TASKS = ("classification", "multilabel", "regression", "sequence")
# Rotating or zooming a strip of characters cuts off the ones at its ends, so the string
# changes: measured on the street demo (3 folds, the defaults), shift alone gave exact match
# 0.937, no augmentation 0.910, shift + rotate + zoom 0.812.
WHOLE_IMAGE_TASKS = ("classification", "multilabel", "regression")

shift = Augmentation(
    build=lambda spec: layers.RandomTranslation(0.1, 0.1, fill_mode="constant", name="aug_shift"),
    tasks=IMAGE_TASKS,
    tta_safe=True,
    description="translate by up to 10% of height and width",
    default=True,
)

rotate = Augmentation(
    build=lambda spec: layers.RandomRotation(10 / 360, fill_mode="constant", name="aug_rotate"),
    tasks=WHOLE_IMAGE_TASKS,
    tta_safe=True,
    description="rotate by up to 10 degrees",
    default=True,
)

zoom = Augmentation(
    build=lambda spec: layers.RandomZoom(0.1, fill_mode="constant", name="aug_zoom"),
    tasks=WHOLE_IMAGE_TASKS,
    tta_safe=True,
    description="zoom in or out by up to 10%",
    default=True,
)

contrast = Augmentation(
    build=lambda spec: layers.RandomContrast(0.2, name="aug_contrast"),
    tasks=IMAGE_TASKS,
    tta_safe=False,
    description="scale contrast by up to 20%",
)
