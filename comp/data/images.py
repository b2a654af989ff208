"""Decode image files with OpenCV into one uint8 array of a common geometry."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from comp.errors import DataError


def read_image(path: Path) -> np.ndarray:
    """One image as uint8 (H, W, C) with C in {1, 3}, colour in RGB order."""
    raw = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if image is None:
        raise DataError(f"{path}: cannot decode the image (corrupt or not an image); replace or remove it")
    if image.dtype != np.uint8:  # 16-bit PNGs: keep the top 8 bits
        image = (image / 257).astype(np.uint8) if image.dtype == np.uint16 else image.astype(np.uint8)
    if image.ndim == 2:
        return image[..., None]
    if image.shape[2] == 4:
        image = image[..., :3]
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def common_geometry(images: list[np.ndarray]) -> tuple[int, int, int]:
    """Most common (height, width, channels): the default input size of the model."""
    return Counter(im.shape for im in images).most_common(1)[0][0]


def load_images(
    paths: list[Path], size: list[int] | None = None, channels: int | None = None
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Decode ``paths`` and resize them to ``size`` x ``channels`` (default: the most common)."""
    images = [read_image(p) for p in paths]
    common = common_geometry(images)
    height, width = size or common[:2]
    channels = channels or common[2]
    if channels not in (1, 3):
        raise DataError(f"data.channels={channels}: use 1 (gray) or 3 (colour)")
    geometry = (int(height), int(width), int(channels))
    out = np.empty((len(images), height, width, channels), dtype=np.uint8)
    for i, image in enumerate(images):
        if image.shape[:2] != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            image = image if image.ndim == 3 else image[..., None]
        if image.shape[2] != channels:
            code = cv2.COLOR_GRAY2RGB if channels == 3 else cv2.COLOR_RGB2GRAY
            image = cv2.cvtColor(image, code)
            image = image if image.ndim == 3 else image[..., None]
        out[i] = image
    return out, geometry
