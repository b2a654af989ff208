"""The competition's inputs (images through the decode cache, or typed table columns), read
from plain settings (``Reading``): the data layer knows no config file."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from comp.api import IMAGE
from comp.competition import Competition
from comp.data.cache import ImageSet, load_image_set
from comp.data.inputs import ImageInputs, Inputs
from comp.errors import DataError


@dataclass(frozen=True)
class Reading:
    """How a competition's inputs are read."""

    cache_dir: Path  # decoded images are cached under cache_dir / "images"
    image_size: tuple[int, int] | None = None  # None: the most common size
    channels: int | None = None  # None: the most common
    max_pixels: int = 64_000_000  # an image whose header claims more is a bad image, never decoded
    in_memory_mb: float = 256.0  # larger decoded sets stay in the disk cache
    on_bad_image: str = "error"  # or skip
    exclude: tuple[str, ...] = ()  # table columns that are no features (the split's group column)


def image_set(competition: Competition, split: str, reading: Reading,
              geometry: tuple[int, int, int] | None = None, strict: bool = True) -> ImageSet:
    """Train or test images at ``geometry`` (default: the reading's size/channels or the most
    common). With ``strict`` and ``on_bad_image="error"``, an undecodable file is a one-line error."""
    paths = competition.train_images if split == "train" else competition.test_images
    if not paths:
        raise DataError(f"{competition.root}: a tabular competition has no images; "
                        "this stage needs an image competition")
    size = list(geometry[:2]) if geometry else (list(reading.image_size) if reading.image_size else None)
    channels = geometry[2] if geometry else reading.channels
    images = load_image_set(paths, competition.digests(split), Path(reading.cache_dir) / "images",
                            size, channels, reading.max_pixels, int(reading.in_memory_mb * 2**20))
    if strict and images.bad and reading.on_bad_image == "error":
        row, reason = next(iter(sorted(images.bad.items())))
        raise DataError(f"{reason} ({len(images.bad)} bad {split} image(s); "
                        "data.on_bad_image=skip skips and lists them)")
    return images


def load_inputs(competition: Competition, split: str, reading: Reading,
                geometry: tuple[int, int, int] | None = None) -> tuple[Inputs, list[str]]:
    """Train or test inputs and notes on how they were read.

    Images: at ``geometry`` (test images at the geometry the models were trained on).
    Tables: the feature columns of train.csv (less ``reading.exclude``), typed on train and
    test together.
    """
    if competition.modality == IMAGE:
        images = image_set(competition, split, reading, geometry=geometry)
        return ImageInputs(images.pixels), []
    from comp.data.tabular import read_table

    features = [c for c in competition.feature_cols if c not in reading.exclude]
    train, test, notes = read_table(competition.train, competition.test, features)
    return (train if split == "train" else test), notes
