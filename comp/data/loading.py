"""The competition's inputs (images through the decode cache, or typed table columns)."""
from __future__ import annotations

from comp.api import IMAGE
from comp.competition import Competition
from comp.config import Config
from comp.data.cache import ImageSet, load_image_set
from comp.data.inputs import ImageInputs, Inputs
from comp.demo import cache_root
from comp.errors import DataError


def image_set(competition: Competition, cfg: Config, split: str,
              geometry: tuple[int, int, int] | None = None, strict: bool = True) -> ImageSet:
    """Train or test images at ``geometry`` (default: data.image_size/channels or the most common).

    With ``strict`` and data.on_bad_image=error, an undecodable file is a one-line error.
    """
    paths = competition.train_images if split == "train" else competition.test_images
    if not paths:
        raise DataError(f"{competition.root}: a tabular competition has no images; "
                        "this stage needs an image competition")
    size = list(geometry[:2]) if geometry else cfg.data.image_size
    channels = geometry[2] if geometry else cfg.data.channels
    images = load_image_set(paths, competition.digests(split), cache_root(cfg.paths.cache) / "images",
                            size, channels, cfg.data.max_pixels, int(cfg.data.in_memory_mb * 2**20))
    if strict and images.bad and cfg.data.on_bad_image == "error":
        row, reason = next(iter(sorted(images.bad.items())))
        raise DataError(f"{reason} ({len(images.bad)} bad {split} image(s); "
                        "data.on_bad_image=skip skips and lists them)")
    return images


def load_inputs(competition: Competition, cfg: Config, split: str,
                geometry: tuple[int, int, int] | None = None) -> tuple[Inputs, list[str]]:
    """Train or test inputs and notes on how they were read.

    Images: at ``geometry`` (test images at the geometry the models were trained on).
    Tables: the feature columns of train.csv (less ``split.group_column``), typed on train
    and test together.
    """
    if competition.modality == IMAGE:
        images = image_set(competition, cfg, split, geometry=geometry)
        return ImageInputs(images.pixels), []
    from comp.data.tabular import read_table

    features = [c for c in competition.feature_cols if c != cfg.split.group_column]
    train, test, notes = read_table(competition.train, competition.test, features)
    return (train if split == "train" else test), notes
