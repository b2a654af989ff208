"""Images that are probably bugs: undecodable, almost blank, odd size, or far from the rest."""
from __future__ import annotations

from collections import Counter
from typing import Iterator

import numpy as np
import pandas as pd

BLANK_STD = 2.0  # pixel standard deviation (0-255) under which an image is 'almost blank'
ROBUST_Z = 5.0  # robust z-score of brightness or contrast beyond which an image is unusual


CHUNK_BYTES = 48 * 2**20  # uint8 pixels per step of a statistic (4,096 images of 64x64x3): a float
# copy of the whole set would not fit


def chunks(pixels: np.ndarray, size: int | None = None) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows, images) ``size`` images (default: CHUNK_BYTES of them) at a time: statistics
    never need the whole set in memory."""
    size = size or max(1, CHUNK_BYTES // max(int(np.prod(pixels.shape[1:])), 1))
    for start in range(0, len(pixels), size):
        rows = slice(start, min(start + size, len(pixels)))
        yield rows, np.asarray(pixels[rows])


def row_moments(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each image's pixel mean and standard deviation, computed a chunk at a time."""
    mean = np.empty(len(pixels), dtype=np.float32)
    std = np.empty(len(pixels), dtype=np.float32)
    for rows, part in chunks(pixels):
        flat = part.reshape(len(part), -1).astype(np.float32)
        mean[rows], std[rows] = flat.mean(1), flat.std(1)
    return mean, std


def image_outliers(pixels: np.ndarray, shapes: list[tuple[int, ...]], bad: dict[int, str]) -> pd.DataFrame:
    """Rows worth a look, most unusual first: columns row, score, reasons."""
    mean, std = row_moments(pixels)
    common = Counter(s[:2] for s in shapes if s).most_common(1)[0][0]
    scores = {"brightness": (mean, _robust_z(mean)), "contrast": (std, _robust_z(std))}  # once: O(n), not O(n^2)
    rows = []
    for i in range(len(pixels)):
        if i in bad:
            rows.append((i, 1000.0, "cannot be decoded"))
            continue
        reasons, score = [], 0.0
        if std[i] < BLANK_STD:
            reasons.append(f"almost blank (pixel std {std[i]:.2f})")
            score = max(score, 100.0)
        if shapes[i][:2] != common:
            reasons.append(f"size {shapes[i][0]}x{shapes[i][1]} (most are {common[0]}x{common[1]})")
            score = max(score, 50.0)
        for name, (values, zs) in scores.items():
            z = zs[i]
            if abs(z) > ROBUST_Z:
                reasons.append(f"{name} {values[i]:.1f} (robust z {z:+.1f})")
                score = max(score, abs(z))
        if reasons:
            rows.append((i, score, "; ".join(reasons)))
    frame = pd.DataFrame(rows, columns=["row", "score", "reasons"])
    return frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def _robust_z(values: np.ndarray) -> np.ndarray:
    median = np.median(values)
    mad = np.median(np.abs(values - median)) * 1.4826
    return (values - median) / (mad if mad > 1e-6 else 1e-6)
