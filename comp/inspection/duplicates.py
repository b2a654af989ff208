"""Exact and near duplicates among images, grouped so `split` can keep each group in one fold.

Three detectors, each documented with its threshold:

- exact: identical decoded pixels (catches copies and lossless re-encodes).
- aligned thumbnail distance: images reduced to 16x16 grey thumbnails; two images are near
  duplicates when the RMS pixel difference (0-255 scale), minimised over shifts of up to
  2 thumbnail pixels, is at most ``near_distance`` (default 8). On the digits demo distinct
  images are never closer than 9.1, 1-px shifted copies sit around 4, JPEG copies at 2.5.
  It compares all pairs, so it runs up to ``max_pairwise`` images.
- perceptual hash (pHash): the sign pattern of the 8x8 lowest DCT frequencies of a 32x32
  thumbnail; near duplicates differ in at most ``phash_distance`` of the 64 bits (default
  6). Used only for images of at least 32x32 pixels: on smaller images the hash carries
  too little information (on 8x8 digits, 1,273 distinct pairs are within 8 bits).

Written by hand because no maintained library does shift-tolerant pairwise matching;
OpenCV's img_hash lives only in the contrib build.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

THUMB = 16
MAX_SHIFT = 2
PHASH_MIN_SIDE = 32
MAX_BUCKET = 500  # pHash band buckets larger than this are near-blank images; skipped


@dataclass(frozen=True)
class Pair:
    a: int
    b: int
    kind: str  # exact | near
    distance: float


def pixel_digests(pixels: np.ndarray) -> list[str]:
    return [hashlib.sha1(np.ascontiguousarray(im).tobytes()).hexdigest() for im in pixels]


def exact_pairs(digests: list[str], skip: set[int] = frozenset()) -> list[Pair]:
    first: dict[str, int] = {}
    pairs = []
    for i, d in enumerate(digests):
        if i in skip:
            continue
        if d in first:
            pairs.append(Pair(first[d], i, "exact", 0.0))
        else:
            first[d] = i
    return pairs


def _grey(image: np.ndarray) -> np.ndarray:
    return image[..., 0] if image.shape[-1] == 1 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def thumbnails(pixels: np.ndarray, size: int = THUMB) -> np.ndarray:
    return np.stack([cv2.resize(_grey(im).astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
                     for im in pixels])


def aligned_pairs(thumbs: np.ndarray, threshold: float, skip: set[int] = frozenset(),
                  block: int = 1024) -> list[Pair]:
    """Pairs whose shift-minimised RMS thumbnail distance is <= ``threshold``."""
    n, s, m = len(thumbs), thumbs.shape[1], MAX_SHIFT
    centre = thumbs[:, m:s - m, m:s - m].reshape(n, -1)
    dims = centre.shape[1]
    shifted = [thumbs[:, m + dy:s - m + dy, m + dx:s - m + dx].reshape(n, -1)
               for dy in range(-m, m + 1) for dx in range(-m, m + 1)]
    sq_centre = (centre ** 2).sum(1)
    sq_shifted = [(b ** 2).sum(1) for b in shifted]
    limit = threshold ** 2 * dims
    pairs = []
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        best = np.full((rows.stop - rows.start, n), np.inf, dtype=np.float32)
        for b, sq in zip(shifted, sq_shifted):
            d2 = sq_centre[rows, None] + sq[None, :] - 2.0 * centre[rows] @ b.T
            np.minimum(best, d2, out=best)
        # The distance is not symmetric under shifts; a pair counts if either way is close.
        ii, jj = np.nonzero(best <= limit)
        for i, j in zip(ii + start, jj):
            if i != j and i not in skip and j not in skip:
                pairs.append(Pair(min(i, j), max(i, j), "near", float(np.sqrt(max(best[i - start, j], 0) / dims))))
    return _dedupe(pairs)


def phash_bits(pixels: np.ndarray) -> np.ndarray:
    """(n, 64) booleans: DCT low-frequency signs of 32x32 grey thumbnails."""
    out = np.empty((len(pixels), 64), dtype=bool)
    for i, im in enumerate(pixels):
        small = cv2.resize(_grey(im).astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
        low = cv2.dct(small)[:8, :8].flatten()
        out[i] = low > np.median(low[1:])
    return out


def phash_pairs(bits: np.ndarray, max_distance: int, skip: set[int] = frozenset()) -> list[Pair]:
    """Pairs within ``max_distance`` bits, found through 8 bands of 8 bits (pigeonhole:
    pairs differing in at most 7 bits share at least one whole band)."""
    bands = np.packbits(bits, axis=1)  # (n, 8) uint8
    candidates: set[tuple[int, int]] = set()
    for b in range(bands.shape[1]):
        order = np.argsort(bands[:, b], kind="stable")
        values = bands[order, b]
        cuts = np.flatnonzero(np.diff(values)) + 1
        for bucket in np.split(order, cuts):
            if 1 < len(bucket) <= MAX_BUCKET:
                for x in range(len(bucket)):
                    for y in range(x + 1, len(bucket)):
                        candidates.add((min(bucket[x], bucket[y]), max(bucket[x], bucket[y])))
    pairs = []
    for a, b in candidates:
        if a in skip or b in skip:
            continue
        d = int((bits[a] != bits[b]).sum())
        if d <= max_distance:
            pairs.append(Pair(int(a), int(b), "near", float(d)))
    return pairs


def find_pairs(pixels: np.ndarray, near_distance: float, phash_distance: int, max_pairwise: int,
               skip: set[int] = frozenset()) -> tuple[list[Pair], list[str]]:
    """All duplicate pairs among ``pixels`` and notes on which detectors ran."""
    notes = []
    pairs = exact_pairs(pixel_digests(pixels), skip)
    if len(pixels) <= max_pairwise:
        pairs += aligned_pairs(thumbnails(pixels), near_distance, skip)
        notes.append(f"aligned 16x16 thumbnail distance <= {near_distance} (all pairs)")
    else:
        notes.append(f"aligned thumbnail check skipped: {len(pixels)} images > inspect.max_pairwise={max_pairwise}")
    if min(pixels.shape[1:3]) >= PHASH_MIN_SIDE:
        pairs += phash_pairs(phash_bits(pixels), phash_distance, skip)
        notes.append(f"pHash Hamming distance <= {phash_distance} of 64 bits")
    else:
        notes.append(f"pHash skipped: images smaller than {PHASH_MIN_SIDE}x{PHASH_MIN_SIDE}")
    return _dedupe(pairs), notes


def groups(n: int, links: list[tuple[int, int]] | list[Pair]) -> np.ndarray:
    """Connected components over linked items (index pairs or Pairs): one group number per item."""
    if not links:
        return np.arange(n)
    a, b = np.array([(p.a, p.b) if isinstance(p, Pair) else p for p in links]).T
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _dedupe(pairs: list[Pair]) -> list[Pair]:
    """One entry per pair, preferring exact over near and then the smaller distance."""
    best: dict[tuple[int, int], Pair] = {}
    for p in pairs:
        key = (p.a, p.b)
        old = best.get(key)
        if old is None or (p.kind, p.distance) < (old.kind, old.distance):
            best[key] = p
    return sorted(best.values(), key=lambda p: (p.a, p.b))
