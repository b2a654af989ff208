"""Built-in augmentation plugins: Keras preprocessing layers (active only in training).

None of them flips: a mirrored digit or character is another label (RECIPE.md 5).
"""
from __future__ import annotations

from keras import layers

from comp.api import Augmentation

# Small shifts, rotations, zooms and contrast changes keep what an image shows: its class,
# its labels, a value read from it, the characters written in it.
IMAGE_TASKS = ("classification", "multilabel", "regression", "sequence")

shift = Augmentation(
    build=lambda spec: layers.RandomTranslation(0.1, 0.1, fill_mode="constant", name="aug_shift"),
    tasks=IMAGE_TASKS,
    tta_safe=True,
    description="translate by up to 10% of height and width",
)

rotate = Augmentation(
    build=lambda spec: layers.RandomRotation(10 / 360, fill_mode="constant", name="aug_rotate"),
    tasks=IMAGE_TASKS,
    tta_safe=True,
    description="rotate by up to 10 degrees",
)

zoom = Augmentation(
    build=lambda spec: layers.RandomZoom(0.1, fill_mode="constant", name="aug_zoom"),
    tasks=IMAGE_TASKS,
    tta_safe=True,
    description="zoom in or out by up to 10%",
)

contrast = Augmentation(
    build=lambda spec: layers.RandomContrast(0.2, name="aug_contrast"),
    tasks=IMAGE_TASKS,
    tta_safe=False,
    description="scale contrast by up to 20%",
)
