"""Decode image files with OpenCV into one uint8 array of a common geometry.

Decoding runs on a thread pool (OpenCV releases the GIL while it decodes and resizes) and
writes each image, resized, straight into the output, which the cache makes a file written
row by row: no list of decoded images is ever held. The common geometry comes from
the files' headers (Pillow reads only those) before any pixel is decoded.
"""
from __future__ import annotations

import io
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from comp.errors import DataError


MAX_PIXELS = 64_000_000  # data.max_pixels' default: 8000x8000; a decoded image of this size takes 192 MB
DECODE_THREADS = min(8, os.cpu_count() or 1)
# Below this mean file size decoding is cheap next to the Python around it, which holds the
# GIL: one thread is faster (64x64 JPEGs: 1 thread 0.8 s, 2 threads 1.2 s per 5,000; 256x256:
# 1.1 s and 0.6 s).
THREADED_FILE_BYTES = 8192
CHUNK = 256  # images per task on the pool
# The channels read_image returns for a file of each Pillow mode (checked on files of each
# mode); other modes are decoded to find out.
HEADER_CHANNELS = {"1": 1, "L": 1, "I": 1, "I;16": 1, "I;16B": 1, "I;16L": 1,
                   "RGB": 3, "RGBA": 3, "P": 3, "LA": 3, "CMYK": 3, "YCbCr": 3}


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


def common_geometry(shapes: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """Most common (height, width, channels): the default input size of the model."""
    return Counter(shapes).most_common(1)[0][0]


def probe_shape(path: Path) -> tuple[int, int, int] | None:
    """The (height, width, channels) ``read_image`` gives ``path``, from its header alone;
    None when only decoding can tell (an unknown mode, or no header Pillow reads)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # the limit is data.max_pixels, applied when decoding
    try:
        with Image.open(path) as image:
            channels = HEADER_CHANNELS.get(image.mode)
            return None if channels is None else (image.size[1], image.size[0], channels)
    except Exception:
        return None


def _threads(paths: list[Path]) -> int:
    sample = paths[:: max(1, len(paths) // 100)]
    sizes = []
    for path in sample:
        try:
            sizes.append(os.path.getsize(path))
        except OSError:
            pass
    return DECODE_THREADS if sizes and np.mean(sizes) >= THREADED_FILE_BYTES else 1


def _chunks(n: int) -> list[range]:
    return [range(start, min(start + CHUNK, n)) for start in range(0, n, CHUNK)]


def decode_all(
    paths: list[Path], size: list[int] | None = None, channels: int | None = None, max_pixels: int = MAX_PIXELS,
    allocate: Callable[[tuple[int, ...]], Any] | None = None,
) -> tuple[np.ndarray, tuple[int, int, int], dict[int, str], list[tuple[int, ...]]]:
    """Decode ``paths`` at ``size`` x ``channels`` (default: the most common geometry, read
    from the files' headers) into what ``allocate(shape)`` returns (default: a zero array;
    anything taking ``out[row] = image``, zero-filled).

    Returns the output (the pixels), the geometry, ``{row: reason}`` for files that cannot be decoded
    (their rows are zeros; callers decide whether that is an error) and each file's own
    shape (``()`` for bad files).
    """
    bad: dict[int, str] = {}
    shapes: list[tuple[int, ...]] = [()] * len(paths)
    with ThreadPoolExecutor(_threads(paths)) as pool:
        if not (size and channels):
            for i, path in enumerate(paths):  # headers only: fast, and holding the GIL, so not pooled
                shape = probe_shape(path)
                if shape is None:  # decoded only to learn its shape (or that it is bad)
                    try:
                        shape = read_image(path, max_pixels).shape
                    except DataError as exc:
                        bad[i] = str(exc)
                        continue
                shapes[i] = tuple(int(v) for v in shape)
            known = [s for s in shapes if s]
            if not known:
                raise DataError(f"none of the {len(paths)} images could be decoded (first: {paths[0]})")
            common = common_geometry(known)
        height, width = size or common[:2]
        channels = channels or common[2]
        if channels not in (1, 3):
            raise DataError(f"data.channels={channels}: use 1 (gray) or 3 (colour)")
        geometry = (int(height), int(width), int(channels))
        shape = (len(paths), *geometry)
        out = allocate(shape) if allocate else np.zeros(shape, dtype=np.uint8)

        def decode(rows: range) -> None:
            for i in rows:
                if i in bad:
                    continue
                try:
                    image = read_image(paths[i], max_pixels)
                except DataError as exc:
                    bad[i], shapes[i] = str(exc), ()  # its row stays zeros
                    continue
                shapes[i] = tuple(int(v) for v in image.shape)
                out[i] = to_geometry(image, geometry)

        list(pool.map(decode, _chunks(len(paths))))
    if len(bad) == len(paths):
        raise DataError(f"none of the {len(paths)} images could be decoded (first: {paths[0]})")
    return out, geometry, dict(sorted(bad.items())), shapes


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
