"""`comp run stage=all` on a synthetic 100k-image competition: it completes, and its peak
memory stays below 2x the uint8 cache of the decoded images.

    python benchmarks/stage_all_memory.py [100000] [size=64] [grey] [budget=40m] [key=value ...]

Issue 26's memory case: ``2000 size=300 grey budget=60m stage=baseline split.folds=2
train.epochs=1 data.image_size=[300,300]`` (trains at the full size), once as is and once
with ``train.max_memory=1000`` (no batch limit).

Builds (in a temporary folder, kept out of git, removed after) a competition of N
size x size x 3 JPEG scenes, 90% train and 10% test, whose label (4 classes) is the kind of
one large shape drawn over random clutter, so the models have something to learn. Then
runs the default pipeline on it in a fresh process, with a budget, and reports the
process tree's peak RSS (``getrusage(RUSAGE_CHILDREN)``: the largest process, tune's trial
processes included) next to the size of the decoded uint8 cache at the images' size
(N x size x size x 3), each stage's seconds and the submission's OOF score. Extra
``key=value`` arguments go to ``comp run``.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

SHAPES = ("ellipse", "rectangle", "triangle", "cross")


def scene(rng: np.random.Generator, size: int, label: int) -> np.ndarray:
    """Clutter (small random shapes) with one large shape of kind ``label`` on top."""
    image = np.full((size, size, 3), rng.integers(0, 256, 3), dtype=np.uint8)
    for _ in range(int(rng.integers(2, 6))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = (int(v) for v in rng.integers(0, size, 2))
        cv2.circle(image, (x, y), int(rng.integers(1, size // 8)), colour, -1)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    cx, cy = (int(v) for v in rng.integers(size // 3, 2 * size // 3, 2))
    r = int(rng.integers(size // 6, size // 3))
    if label == 0:
        cv2.ellipse(image, (cx, cy), (r, int(r * rng.uniform(0.5, 1))), float(rng.uniform(0, 180)), 0, 360, colour, -1)
    elif label == 1:
        cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + int(r * rng.uniform(0.5, 1))), colour, -1)
    elif label == 2:
        cv2.fillPoly(image, [np.array([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], np.int32)], colour)
    else:
        thick = max(2, r // 3)
        cv2.line(image, (cx - r, cy), (cx + r, cy), colour, thick)
        cv2.line(image, (cx, cy - r), (cx, cy + r), colour, thick)
    return np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)


def build(folder: Path, n: int, size: int, grey: bool = False) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(SHAPES), n)
    test = rng.random(n) < 0.1
    ids = np.array([f"s{i:06d}" for i in range(n)])
    for split in ("train", "test"):
        (folder / split).mkdir(parents=True)
    for i in range(n):
        image = scene(rng, size, labels[i])
        cv2.imwrite(str(folder / ("test" if test[i] else "train") / f"{ids[i]}.jpg"),
                    cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if grey else image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    with open(folder / "train.csv", "w") as f:
        f.write("id,shape\n" + "".join(f"{i},{SHAPES[k]}\n" for i, k in zip(ids[~test], labels[~test])))
    with open(folder / "sample_submission.csv", "w") as f:
        f.write("id,shape\n" + "".join(f"{i},{SHAPES[0]}\n" for i in ids[test]))


def main(argv: list[str]) -> int:
    n = int(next((a for a in argv if a.isdigit()), "100000"))
    size = int(next((a for a in argv if a.startswith("size=")), "size=64").split("=")[1])
    budget = next((a for a in argv if a.startswith("budget=")), "budget=40m")
    extra = [a for a in argv if "=" in a and not a.startswith(("size=", "budget="))]
    grey = "grey" in argv
    channels = 1 if grey else 3
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        began = time.perf_counter()
        build(root / "shapes", n, size, grey)
        print(f"wrote {n} JPEG scenes of {size}x{size}x{channels} in {time.perf_counter() - began:.0f}s", flush=True)
        exe = Path(sys.executable).with_name("comp")
        args = [str(exe), "run", "stage=all", f"competition={root / 'shapes'}", "run=shapes", budget,
                f"paths.cache={root / 'cache'}", f"paths.runs={root / 'runs'}",
                f"paths.submissions={root / 'submissions'}", *extra]
        began = time.perf_counter()
        done = subprocess.run(args, cwd=root, capture_output=True, text=True)
        wall = time.perf_counter() - began
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        log = Path(tempfile.gettempdir()) / "stage_all_memory.log"
        log.write_text(done.stdout + done.stderr)
        if done.returncode:
            print(done.stdout[-3000:], done.stderr[-3000:])
            print(f"comp run failed with exit {done.returncode}")
            return 1
        entries = sum(p.stat().st_size for p in (root / "cache").rglob("pixels.npy"))
        stages = {p.parent.name: json.loads(p.read_text()).get("seconds")
                  for p in sorted((root / "runs/shapes").glob("*/stage.json"))}
        predicted = root / "runs/shapes/predict/stage.json"  # absent when stage= stops earlier
        score = json.loads(predicted.read_text()).get("score") if predicted.is_file() else None
        submissions = sorted(p.name for p in (root / "submissions").glob("*.csv"))
        report = (root / "runs/shapes/report.html").is_file()
    print(f"stage=all on {n} images ({size}x{size}x{channels}), {budget} {' '.join(extra)}: completed in {wall:.0f}s; "
          f"submission {submissions[-1] if submissions else 'none'}; report {'written' if report else 'missing'}")
    cache = n * size * size * channels  # the uint8 cache of the images at their size (train and test entries)
    print(f"decoded cache {cache / 2**20:.0f} MiB ({entries / 2**20:.0f} MiB with the other sizes tune tried); "
          f"peak RSS {peak / 2**20:.0f} MiB = {peak / cache:.2f}x the cache (target < 2x)")
    print(f"stage seconds: {stages}; submitted OOF {score}; log: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
