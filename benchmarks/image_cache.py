"""Decoding a large image set into the cache: images/s and peak memory vs the cache's size.

    python benchmarks/image_cache.py [100000] [size=64]

Writes N random-shape scenes (``near_duplicates.images``) as JPEG files of size x size x 3
into a temporary folder (kept out of git, removed after), then in a fresh process decodes
them cold into a fresh cache (``load_image_set``: header probe, thread-pool decode, written
straight into the entry's file) and opens the entry again. Prints images/s, the
cache's size and the child's peak RSS, with their ratio (target: peak RSS < 2x the cache).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).parent))
from near_duplicates import images  # noqa: E402

CHILD = """
import json, resource, sys, time
from pathlib import Path
from comp.data.cache import file_digests, load_image_set
paths = sorted(Path(sys.argv[1]).glob("*.jpg"))
began = time.perf_counter()
digests = file_digests(paths)
hashed = time.perf_counter() - began
began = time.perf_counter()
entry = load_image_set(paths, digests, Path(sys.argv[2]))
decoded = time.perf_counter() - began
print(json.dumps({"n": len(paths), "hash_s": hashed, "decode_s": decoded, "bytes": int(entry.pixels.nbytes),
                  "mapped": getattr(entry.pixels, "streamed", False),
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def main(argv: list[str]) -> int:
    n = int(next((a for a in argv if a.isdigit()), "100000"))
    size = int(next((a for a in argv if a.startswith("size=")), "size=64").split("=")[1])
    with tempfile.TemporaryDirectory() as scratch:
        folder, cache = Path(scratch, "images"), Path(scratch, "cache")
        folder.mkdir()
        began = time.perf_counter()
        for start in range(0, n, 5000):
            for i, image in enumerate(images(min(5000, n - start), size=size, seed=start), start=start):
                cv2.imwrite(str(folder / f"{i:07d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        print(f"wrote {n} JPEG files of {size}x{size}x3 in {time.perf_counter() - began:.0f}s", flush=True)
        out = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(cache)], check=True,
                             capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
    print(f"{r['n']} images: hashed {r['n'] / r['hash_s']:.0f} files/s, decoded into the cache {r['n'] / r['decode_s']:.0f} "
          f"images/s ({r['decode_s']:.1f}s); cache {r['bytes'] / 2**20:.0f} MiB "
          f"({'on disk, read by rows' if r['mapped'] else 'in memory'}); peak RSS {r['peak_rss'] / 2**20:.0f} MiB = "
          f"{r['peak_rss'] / r['bytes']:.2f}x the cache")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
