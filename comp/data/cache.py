"""Decoded images cached once, keyed by file content, memory-mapped when large.

The key hashes every file's bytes plus the target geometry, so an edited, added or
removed image gives a new key (the old entry is simply not used again).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from comp.data.images import decode_all

DECODER_VERSION = "1"  # bump when decoding or resizing changes, so old entries are ignored
MMAP_BYTES = 256 * 2**20  # above this an entry is memory-mapped instead of read into RAM


@dataclass
class ImageSet:
    pixels: np.ndarray  # uint8 (n, h, w, c); rows of bad images are zeros
    geometry: tuple[int, int, int]
    bad: dict[int, str]  # row -> why it could not be decoded
    shapes: list[tuple[int, ...]]  # each file's own (h, w, c) before resizing; () when bad
    from_cache: bool


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_image_set(paths: list[Path], digests: list[str], cache_dir: Path,
                   size: list[int] | None = None, channels: int | None = None) -> ImageSet:
    """Decode ``paths`` (or reuse the cached decode of identical files) at the given geometry."""
    key = hashlib.sha256(json.dumps([DECODER_VERSION, digests, size, channels]).encode()).hexdigest()[:24]
    entry = cache_dir / key
    if (entry / "meta.json").is_file():
        meta = json.loads((entry / "meta.json").read_text())
        big = (entry / "pixels.npy").stat().st_size > MMAP_BYTES
        pixels = np.load(entry / "pixels.npy", mmap_mode="r" if big else None)
        return ImageSet(pixels, tuple(meta["geometry"]), {int(k): v for k, v in meta["bad"].items()},
                        [tuple(s) for s in meta["shapes"]], True)

    pixels, geometry, bad, shapes = decode_all(paths, size, channels)
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache_dir))
    np.save(staging / "pixels.npy", pixels)
    (staging / "meta.json").write_text(json.dumps({"geometry": geometry, "bad": bad, "shapes": shapes}))
    try:
        os.replace(staging, entry)  # atomic: a reader sees a whole entry or none
    except OSError:  # another process published the same entry first
        for f in staging.iterdir():
            f.unlink()
        staging.rmdir()
    return ImageSet(pixels, tuple(geometry), bad, shapes, False)
