"""Exact and near duplicates among images, grouped so `split` can keep each group in one fold.

Three detectors, each documented with its threshold:

- exact: identical decoded pixels (catches copies and lossless re-encodes).
- aligned thumbnail distance: images reduced to 16x16 grey thumbnails; the distance of two
  images is the RMS pixel difference (0-255 scale) minimised over shifts of up to 2
  thumbnail pixels (a 1-px shift of an 8x8 image). No all-pairs step: candidates come from a
  nearest-neighbour index (scikit-learn, KD-tree over an 8-dim PCA of the thumbnails' centres)
  queried with each image unshifted and shifted, so the work grows near linearly with the
  number of images. The threshold adapts to the data: a pair is near when its distance is at
  most ``near_ratio`` (0.2) x the median distance of an image to its 5th nearest neighbour,
  and never above ``near_distance`` (8). Measured on the digits demo (with planted copies):
  the median 5th-neighbour distance is 30, planted 1-px shifted and JPEG copies sit at <= 2.5,
  distinct images at >= 9.1 (threshold 6.1); on the same digits at a quarter of the contrast
  (look-alikes: every image within 8 of several others) all distances shrink fourfold and the
  threshold with them (copies <= 0.64, distinct >= 2.2, threshold 1.4). Shifts are matched
  in whole thumbnail pixels: a 1-px shift is exact for images up to 16 px and small for
  large smooth images, but on sharp-edged images of 32-128 px (half to an eighth of a
  thumbnail pixel) it can leave a distance near the data's scale, and such copies are
  missed (benchmarks/near_duplicates.py counts them).
- perceptual hash (pHash): the sign pattern of the 8x8 lowest DCT frequencies of a 32x32
  thumbnail; near duplicates differ in at most ``phash_distance`` of the 64 bits (default
  6), checked on the index's candidate pairs (the index compares brightness- and
  contrast-normalised thumbnails, so such copies are neighbours). Used only for images of
  at least 32x32 pixels: on smaller images the hash carries too little information (on 8x8
  digits, 1,273 distinct pairs are within 8 bits).

Near pairs never chain look-alikes into one giant group: a connected group of near pairs
larger than ``max_group_share`` of the images is refused (its near links are dropped and
reported), so `split` can keep its folds balanced.

The alignment and the index queries are written by hand because no maintained library does
shift-tolerant matching; OpenCV's img_hash lives only in the contrib build.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import cv2
import numpy as np

THUMB = 16
MAX_SHIFT = 2
FINE = 32  # images larger than THUMB: candidates the 16x16 distance rejects are measured again at 32x32 ...
FINE_SHIFT = 1  # ... over shifts of one 32x32 pixel
FINE_REACH = 1.25  # ... when no farther than this x the data's median 5th-neighbour distance
PHASH_MIN_SIDE = 32
INDEX_DIMS = 8  # PCA components in the index; 16 ran 3x slower at 30k images, and at 10k found the same planted copies
NEIGHBOURS = 8  # neighbours per unshifted query; also where the distance scale is read
SHIFTED_NEIGHBOURS = 3  # neighbours per shifted query
SCALE_RANK = 5  # the scale: median distance of an image to its 5th nearest neighbour
MIN_REFUSED_GROUP = 10  # a near group this small is never refused, whatever the share


@dataclass(frozen=True)
class Pair:
    a: int
    b: int
    kind: str  # exact | near
    distance: float


@dataclass
class Found:
    """Duplicate pairs, notes on how they were found, and near groups refused as chains."""
    pairs: list[Pair]
    notes: list[str]
    refused: list[list[int]] = field(default_factory=list)


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


def both_thumbnails(pixels) -> tuple[np.ndarray, np.ndarray | None]:
    """The 16x16 float thumbnails and, for images larger than that, the fine grid as uint8
    (uint8 keeps 100k of them at 100 MB), in one pass over the images: the grey image itself
    where it fits in FINE x FINE (a 1-px shift stays one whole pixel), else 32x32 area averaged."""
    if min(pixels.shape[1:3]) <= THUMB:
        return thumbnails(pixels), None
    native = max(pixels.shape[1:3]) <= FINE
    coarse = np.empty((len(pixels), THUMB, THUMB), np.float32)
    fine = np.empty((len(pixels), *(pixels.shape[1:3] if native else (FINE, FINE))), np.uint8)
    for i, im in enumerate(pixels):
        grey = _grey(im)
        coarse[i] = cv2.resize(grey.astype(np.float32), (THUMB, THUMB), interpolation=cv2.INTER_LINEAR)
        fine[i] = grey if native else cv2.resize(grey, (FINE, FINE), interpolation=cv2.INTER_AREA)
    return coarse, fine


def fine_distances(fine: np.ndarray, pairs: np.ndarray, chunk: int = 20000) -> np.ndarray:
    """RMS distance of each pair's fine grids (see both_thumbnails) minimised over shifts of
    one pixel: the odd shifts (a 1-px shift of a 28- or 32-px image) that whole 16x16
    thumbnail pixels miss."""
    out = np.empty(len(pairs), dtype=np.float32)
    m = FINE_SHIFT
    h, w = fine.shape[1:3]
    for start in range(0, len(pairs), chunk):
        a = fine[pairs[start:start + chunk, 0]].astype(np.float32)
        b = fine[pairs[start:start + chunk, 1]].astype(np.float32)
        centre_a = a[:, m:h - m, m:w - m].reshape(len(a), -1)
        best = np.full(len(a), np.inf, dtype=np.float32)
        for dy in range(-m, m + 1):  # shifts of both signs: moving b covers moving a the other way
            for dx in range(-m, m + 1):
                moved_b = b[:, m + dy:h - m + dy, m + dx:w - m + dx].reshape(len(b), -1)
                np.minimum(best, ((centre_a - moved_b) ** 2).mean(1), out=best)
        out[start:start + chunk] = np.sqrt(best)
    return out


def _crops(thumbs: np.ndarray, rows, dy: int, dx: int) -> np.ndarray:
    s, m = thumbs.shape[1], MAX_SHIFT
    crop = thumbs[rows, m + dy:s - m + dy, m + dx:s - m + dx]
    return crop.reshape(crop.shape[0], -1)


def _index_vectors(crops: np.ndarray, pca) -> np.ndarray:
    # Each crop less its mean and scaled to unit norm: copies that differ in brightness or
    # contrast (which pHash tolerates) become neighbours too.
    centred = crops - crops.mean(axis=1, keepdims=True)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True) + 1e-3
    return centred if pca is None else pca.transform(centred)


def candidate_pairs(thumbs: np.ndarray, native: np.ndarray | None = None) -> np.ndarray:
    """(m, 2) index pairs a < b worth measuring: each image's nearest neighbours, unshifted and
    shifted by every even offset up to MAX_SHIFT, in a KD-tree over a PCA of the centres.
    With ``native`` (small grey images, see both_thumbnails) each image is also queried as
    its thumbnail would look after a shift of one native pixel: on thin strokes (28x28 digits)
    a sub-thumbnail-pixel shift moves a copy farther than the neighbours the index returns."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    n = len(thumbs)
    every = slice(None)
    centre = _index_vectors(_crops(thumbs, every, 0, 0), None)
    pca = PCA(min(INDEX_DIMS, centre.shape[1], n), random_state=0).fit(centre)
    index = NearestNeighbors(algorithm="kd_tree", n_jobs=-1).fit(pca.transform(centre))
    found = [index.kneighbors(pca.transform(centre), min(NEIGHBOURS + 1, n), return_distance=False)]
    shifts = [(dy, dx) for dy in range(-MAX_SHIFT, MAX_SHIFT + 1, 2) for dx in range(-MAX_SHIFT, MAX_SHIFT + 1, 2)
              if dy or dx]
    queries = [_index_vectors(_crops(thumbs, every, dy, dx), pca) for dy, dx in shifts]
    if native is not None:
        moved = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
        queries += [_index_vectors(_crops(thumbnails(np.roll(native, (dy, dx), axis=(1, 2))[..., None]), every, 0, 0),
                                   pca) for dy, dx in moved]
    shifted = index.kneighbors(np.concatenate(queries), min(SHIFTED_NEIGHBOURS, n), return_distance=False)
    found += np.split(shifted, len(queries))
    b = np.concatenate(found, axis=1)
    a = np.broadcast_to(np.arange(n)[:, None], b.shape)
    pairs = np.stack([np.minimum(a, b).ravel(), np.maximum(a, b).ravel()], axis=1)
    return np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)


def aligned_distances(thumbs: np.ndarray, pairs: np.ndarray, chunk: int = 20000) -> np.ndarray:
    """RMS thumbnail distance of each pair, minimised over shifts of either image."""
    out = np.empty(len(pairs), dtype=np.float32)
    for start in range(0, len(pairs), chunk):
        a, b = pairs[start:start + chunk, 0], pairs[start:start + chunk, 1]
        ca, cb = _crops(thumbs, a, 0, 0), _crops(thumbs, b, 0, 0)
        best = np.full(len(a), np.inf, dtype=np.float32)
        for dy in range(-MAX_SHIFT, MAX_SHIFT + 1):
            for dx in range(-MAX_SHIFT, MAX_SHIFT + 1):
                np.minimum(best, ((ca - _crops(thumbs, b, dy, dx)) ** 2).mean(1), out=best)
                np.minimum(best, ((cb - _crops(thumbs, a, dy, dx)) ** 2).mean(1), out=best)
        out[start:start + chunk] = np.sqrt(best)
    return out


def distance_scale(n: int, pairs: np.ndarray, distances: np.ndarray) -> float | None:
    """Median over images of the distance to their SCALE_RANK-th nearest measured neighbour
    (None with too few images): how far apart distinct images of this data typically are."""
    if n <= SCALE_RANK:
        return None
    ends = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dist = np.concatenate([distances, distances])
    order = np.lexsort((dist, ends))
    ends, dist = ends[order], dist[order]
    starts = np.searchsorted(ends, np.arange(n))
    counts = np.diff(np.append(starts, len(ends)))
    rank = np.minimum(SCALE_RANK, counts) - 1
    has = counts > 0
    return float(np.median(dist[starts[has] + rank[has]]))


def near_pairs(thumbs: np.ndarray, pairs: np.ndarray, max_distance: float, ratio: float,
               skip: set[int] = frozenset(), fine: np.ndarray | None = None) -> tuple[list[Pair], float]:
    """Near pairs among the candidate ``pairs`` by aligned thumbnail distance, and the
    threshold the data gave. With ``fine`` (32x32 thumbnails) a pair over the threshold is
    measured again there, over 1-px shifts, and the smaller distance counts (a distinct
    pair is no nearer at the finer scale: less is averaged away)."""
    if len(pairs) == 0:
        return [], max_distance
    distances = aligned_distances(thumbs, pairs)
    scale = distance_scale(len(thumbs), pairs, distances)
    threshold = max_distance if scale is None else min(max_distance, ratio * scale)
    if fine is not None:
        # Only pairs no farther than FINE_REACH x the data's typical neighbour distance: a
        # sub-pixel shift of sharp edges can take a copy that far at 16x16 (32-px scenes: up
        # to 0.9x; 1-px shifts of 28x28 digits' thin strokes: up to 1.0x), and beyond it a
        # pair is not worth measuring again (most candidates are).
        far = np.inf if scale is None else FINE_REACH * scale
        over = np.flatnonzero((distances > threshold) & (distances <= far))
        distances[over] = np.minimum(distances[over], fine_distances(fine, pairs[over]))
    return [Pair(int(a), int(b), "near", float(d)) for (a, b), d in zip(pairs, distances)
            if d <= threshold and a not in skip and b not in skip], threshold


def phash_bits(pixels: np.ndarray) -> np.ndarray:
    """(n, 64) booleans: DCT low-frequency signs of 32x32 grey thumbnails."""
    out = np.empty((len(pixels), 64), dtype=bool)
    for i, im in enumerate(pixels):
        small = cv2.resize(_grey(im).astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
        low = cv2.dct(small)[:8, :8].flatten()
        out[i] = low > np.median(low[1:])
    return out


def phash_pairs(bits: np.ndarray, pairs: np.ndarray, max_distance: int, skip: set[int] = frozenset()) -> list[Pair]:
    """The candidate ``pairs`` whose hashes differ in at most ``max_distance`` bits."""
    if len(pairs) == 0:
        return []
    packed = np.packbits(bits, axis=1).view(">u8")[:, 0]
    distance = np.bitwise_count(packed[pairs[:, 0]] ^ packed[pairs[:, 1]])
    return [Pair(int(a), int(b), "near", float(d)) for (a, b), d in zip(pairs, distance)
            if d <= max_distance and a not in skip and b not in skip]


def find_pairs(pixels: np.ndarray, near_distance: float, near_ratio: float, phash_distance: int,
               max_group_share: float, skip: set[int] = frozenset()) -> Found:
    """All duplicate pairs among ``pixels``, notes on the detectors, and refused chains."""
    notes = []
    exact = exact_pairs(pixel_digests(pixels), skip)
    thumbs, fine = both_thumbnails(pixels)
    native = fine if fine is not None and max(pixels.shape[1:3]) <= FINE else None
    candidates = candidate_pairs(thumbs, native) if len(thumbs) > 1 else np.zeros((0, 2), dtype=np.int64)
    near, threshold = near_pairs(thumbs, candidates, near_distance, near_ratio, skip, fine)
    notes.append(f"aligned 16x16 thumbnail distance <= {threshold:.2f} (min of inspect.near_distance="
                 f"{near_distance} and inspect.near_ratio={near_ratio} x the median 5th-neighbour distance)"
                 + ("" if fine is None else "; native pixels over 1-px shifts" if native is not None
                    else "; 32x32 over 1-px shifts"))
    if min(pixels.shape[1:3]) >= PHASH_MIN_SIDE:
        near += phash_pairs(phash_bits(pixels), candidates, phash_distance, skip)
        notes.append(f"pHash Hamming distance <= {phash_distance} of 64 bits")
    else:
        notes.append(f"pHash skipped: images smaller than {PHASH_MIN_SIDE}x{PHASH_MIN_SIDE}")
    near, refused = refuse_chains(len(pixels), exact, near, max_group_share)
    return Found(_dedupe(exact + near), notes, refused)


def refuse_chains(n: int, exact: list[Pair], near: list[Pair], max_share: float) -> tuple[list[Pair], list[list[int]]]:
    """Drop the near links of groups larger than ``max_share`` of the ``n`` images: such a
    group is look-alikes chained pair by pair, not copies of one image, and keeping it in one
    fold would unbalance the folds. Exact copies are always kept together."""
    if not near:
        return near, []
    group_of = groups(n, exact + near)
    sizes = np.bincount(group_of)
    limit = max(MIN_REFUSED_GROUP, int(max_share * n))
    too_big = set(np.flatnonzero(sizes > limit).tolist())
    if not too_big:
        return near, []
    refused = [np.flatnonzero(group_of == g).tolist() for g in sorted(too_big, key=lambda g: -sizes[g])]
    return [p for p in near if group_of[p.a] not in too_big], refused


def groups(n: int, links: list[tuple[int, int]] | list[Pair]) -> np.ndarray:
    """Connected components over linked items (index pairs or Pairs): one group number per item."""
    from scipy.sparse import coo_matrix  # not at import: `comp --help` stays fast
    from scipy.sparse.csgraph import connected_components

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
