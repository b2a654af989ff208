"""Decode image files with OpenCV into one uint8 array of a common geometry."""
from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from comp.errors import DataError


MAX_PIXELS = 64_000_000  # data.max_pixels' default: 8000x8000; a decoded image of this size takes 192 MB


def header_size(raw: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from the file's header, without decoding the pixels (Pillow reads
    only the header); None when Pillow does not know the format."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # the limit is ours (data.max_pixels), checked by the caller
    try:
        with Image.open(io.BytesIO(raw.tobytes())) as image:
            return image.size
    except Exception:  # not an image Pillow reads: OpenCV may still decode it, or say it cannot
        return None


def read_image(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """One image as uint8 (H, W, C) with C in {1, 3}, colour in RGB order.

    An image whose header claims more than ``max_pixels`` pixels is refused before any
    pixel is decoded (a decompression bomb would take gigabytes)."""
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:  # a directory named like an image, an unreadable file
        raise DataError(f"{path}: cannot read it as an image file ({exc.strerror or type(exc).__name__}); "
                        "replace or remove it") from None
    size = header_size(raw) if raw.size else None
    if size and size[0] * size[1] > max_pixels:
        raise DataError(f"{path}: {size[0]}x{size[1]} pixels, over data.max_pixels={max_pixels}; "
                        "resize the image or raise data.max_pixels")
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if image is None:
        raise DataError(f"{path}: cannot decode the image (corrupt or not an image); replace or remove the file")
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


def decode_all(
    paths: list[Path], size: list[int] | None = None, channels: int | None = None, max_pixels: int = MAX_PIXELS
) -> tuple[np.ndarray, tuple[int, int, int], dict[int, str], list[tuple[int, ...]]]:
    """Decode ``paths`` at ``size`` x ``channels`` (default: the most common geometry).

    Returns the pixels, the geometry, ``{row: reason}`` for files that cannot be decoded
    (their rows are zeros; callers decide whether that is an error) and each file's own
    shape (``()`` for bad files).
    """
    images: list[np.ndarray | None] = []
    bad: dict[int, str] = {}
    for i, path in enumerate(paths):
        try:
            images.append(read_image(path, max_pixels))
        except DataError as exc:
            images.append(None)
            bad[i] = str(exc)
    good = [im for im in images if im is not None]
    if not good:
        raise DataError(f"none of the {len(paths)} images could be decoded (first: {paths[0]})")
    common = common_geometry(good)
    height, width = size or common[:2]
    channels = channels or common[2]
    if channels not in (1, 3):
        raise DataError(f"data.channels={channels}: use 1 (gray) or 3 (colour)")
    geometry = (int(height), int(width), int(channels))
    out = np.zeros((len(images), height, width, channels), dtype=np.uint8)
    for i, image in enumerate(images):
        if image is not None:
            out[i] = to_geometry(image, geometry)
    shapes = [tuple(im.shape) if im is not None else () for im in images]
    return out, geometry, bad, shapes


def to_geometry(image: np.ndarray, geometry: tuple[int, int, int]) -> np.ndarray:
    """Resize (area interpolation) and convert channels to ``geometry``."""
    height, width, channels = geometry
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        image = image if image.ndim == 3 else image[..., None]
    if image.shape[2] != channels:
        code = cv2.COLOR_GRAY2RGB if channels == 3 else cv2.COLOR_RGB2GRAY
        image = cv2.cvtColor(image, code)
        image = image if image.ndim == 3 else image[..., None]
    return image
