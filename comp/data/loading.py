"""The competition's images as arrays, through the decode cache, with the bad-image policy."""
from __future__ import annotations

from comp.competition import Competition
from comp.config import Config
from comp.data.cache import ImageSet, load_image_set
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
                            size, channels)
    if strict and images.bad and cfg.data.on_bad_image == "error":
        row, reason = next(iter(sorted(images.bad.items())))
        raise DataError(f"{reason} ({len(images.bad)} bad {split} image(s); "
                        "data.on_bad_image=skip skips and lists them)")
    return images
