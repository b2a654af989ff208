"""The bundled demo competition: scikit-learn's handwritten digits in Kaggle layout.

Real data (1,797 8x8 scans from UCI), no download. 80% becomes train.csv + train/,
20% the test set; the hidden test labels go to ``solution.csv`` beside (not inside) the
competition folder, so a holdout score can be checked honestly.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

DEMO_NAME = "digits"
DEMO_VERSION = "1"  # bump when the layout changes so caches are rebuilt


def cache_root(configured: str | None = None) -> Path:
    """Where comp keeps data it builds: paths.cache, $COMP_CACHE or ~/.cache/comp."""
    if configured:
        return Path(configured).expanduser()
    env = os.environ.get("COMP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "comp"


def demo_competition(cache: Path) -> Path:
    """Build the digits competition under ``cache`` once; return its folder."""
    home = cache / "demo" / f"v{DEMO_VERSION}"
    folder = home / DEMO_NAME
    if (folder / "sample_submission.csv").is_file():
        return folder
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=home))
    try:
        _write_digits(staging / DEMO_NAME, staging / "solution.csv")
        os.replace(staging / "solution.csv", home / "solution.csv")
        os.replace(staging / DEMO_NAME, folder)  # atomic: a half-built demo is never seen
    except OSError:
        if not (folder / "sample_submission.csv").is_file():  # not a concurrent builder winning
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _write_digits(folder: Path, solution: Path) -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    ids = np.array([f"{i:05d}" for i in range(len(images))])
    labels = digits.target.astype(str)
    train_idx, test_idx = train_test_split(
        np.arange(len(images)), test_size=0.2, stratify=labels, random_state=0
    )
    for sub, idx in (("train", train_idx), ("test", test_idx)):
        (folder / sub).mkdir(parents=True)
        for i in idx:
            cv2.imwrite(str(folder / sub / f"{ids[i]}.png"), images[i])
    pd.DataFrame({"id": ids[train_idx], "label": labels[train_idx]}).to_csv(folder / "train.csv", index=False)
    pd.DataFrame({"id": ids[test_idx], "label": "0"}).to_csv(folder / "sample_submission.csv", index=False)
    pd.DataFrame({"id": ids[test_idx], "label": labels[test_idx]}).to_csv(solution, index=False)
