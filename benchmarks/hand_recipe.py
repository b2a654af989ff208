"""comp's default against a plain hand-written 5-fold Keras recipe, same data, same wall time.

`python benchmarks/hand_recipe.py [mnist5k|large] [budget=5m] [budget=15m]` (`pip install -e ".[bench]"`)
runs `comp run stage=all budget=B` in a fresh process, then the recipe below given comp's wall
time (its own process start included), and prints both scores on the 1,000 held-back labels.

The recipe is what a competitor writes in a notebook: a BatchNorm CNN (three conv blocks of
32, 64, 128 filters, global average pooling, dropout), AdamW at 3e-3, one epoch of linear
warmup then cosine decay to zero, small random shifts, 5 stratified folds, the test
prediction the mean of the fold models' probabilities. Its epochs a fold are what fits the
time: one epoch is timed after a warm-up epoch to plan fold 1, and fold 1's seconds per epoch
(its tracing and predictions included) plan the other four. Images larger than 32x32 are
averaged down to 32x32 first.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from datasets import mnist5k, mnist5k_large  # noqa: E402

from comp.config import parse_duration  # noqa: E402


def run_comp(folder: Path, solution: Path, budget: str) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        began = time.monotonic()
        done = subprocess.run([str(Path(sys.executable).with_name("comp")), "run", "stage=all",
                               f"competition={folder}", "run=bench", f"budget={budget}"],
                              cwd=scratch, capture_output=True, text=True)
        wall = time.monotonic() - began
        log = os.environ.get("COMP_BENCH_LOG")  # where to keep comp's output, to read what each stage did
        if log:
            Path(log).write_text(done.stdout + done.stderr)
        if done.returncode:
            raise SystemExit(done.stderr)
        (path,) = Path(scratch, "submissions").glob("*.csv")
        got = pd.read_csv(path, dtype=str)["label"]
        oof = float(re.search(r"^OOF \S+ = ([-\d.]+)", done.stdout, re.MULTILINE).group(1))
    truth = pd.read_csv(solution, dtype=str)["label"]
    return {"wall": wall, "oof": oof, "holdout": float((got == truth).mean())}


HAND = r'''
import sys, time, math
began = time.monotonic()
import cv2, numpy as np, pandas as pd, keras
from keras import layers
from sklearn.model_selection import StratifiedKFold

folder, seconds = sys.argv[1], float(sys.argv[2])
train = pd.read_csv(f"{folder}/train.csv", dtype=str)
test = pd.read_csv(f"{folder}/sample_submission.csv", dtype=str)
# what a competitor does with large images: average them down to at most 32x32 first
small = lambda im: im if im.shape[0] <= 32 else cv2.resize(im, (32, 32), interpolation=cv2.INTER_AREA)
read = lambda split, ids: np.stack([small(cv2.imread(f"{folder}/{split}/{i}.png", cv2.IMREAD_GRAYSCALE))
                                    for i in ids])
x, xt = read("train", train["id"])[..., None], read("test", test["id"])[..., None]
y = train["label"].astype(int).to_numpy()
keras.utils.set_random_seed(0)


def net(shape):
    inputs = keras.Input(shape)
    h = layers.Rescaling(1 / 255)(inputs)
    h = layers.RandomTranslation(0.08, 0.08, fill_mode="constant")(h)
    for filters in (32, 64, 128):
        for _ in range(2):
            h = layers.Conv2D(filters, 3, padding="same", use_bias=False)(h)
            # momentum 0.9: at 0.99 a 4,000-row fold's ~60 steps an epoch leave the moving variance
            # far from the batches' (measured: 8 epochs a fold scored chance in inference)
            h = layers.BatchNormalization(momentum=0.9)(h)
            h = layers.Activation("relu")(h)
        h = layers.MaxPooling2D()(h) if filters != 128 else h
    h = layers.GlobalAveragePooling2D()(h)
    h = layers.Dropout(0.3)(h)
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(h))


def compiled(rows, epochs):
    steps = math.ceil(len(rows) / 64)
    schedule = keras.optimizers.schedules.CosineDecay(0.0, max(epochs - 1, 1) * steps, warmup_target=3e-3,
                                                      warmup_steps=steps)
    model = net(x.shape[1:])
    model.compile(keras.optimizers.AdamW(schedule, weight_decay=1e-2), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def fit(rows, epochs):
    model = compiled(rows, epochs)
    model.fit(x[rows], y[rows], batch_size=64, epochs=epochs, verbose=0)
    return model


folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(x, y))
probe = compiled(folds[0][0], 12)  # time an epoch after a warm-up one (tracing), as the folds train
t0 = time.monotonic()
probe.fit(x[folds[0][0]], y[folds[0][0]], batch_size=64, epochs=1, verbose=0)
first = time.monotonic() - t0
t0 = time.monotonic()
probe.fit(x[folds[0][0]], y[folds[0][0]], batch_size=64, epochs=1, verbose=0)
epoch = time.monotonic() - t0
left = seconds - (time.monotonic() - began)
# each fold builds and traces a new model (the first epoch's extra time, measured) and predicts
# its rows and the test set (~10% of an epoch)
overhead = max(first - epoch, 0.0) + 0.1 * epoch
epochs = max(1, min(40, int((left / 5 - overhead) / epoch)))
oof = np.zeros((len(x), 10))
test_prob = np.zeros((len(xt), 10))
planned = []
for k, (tr, va) in enumerate(folds):
    if k == 1:  # fold 1 measured what a fold costs: the other folds get what is left, shared
        per_epoch = (time.monotonic() - fold_began) / epochs
        left = seconds - (time.monotonic() - began)
        epochs = max(1, min(40, int(left / 4 / per_epoch)))
    fold_began = time.monotonic()
    planned.append(epochs)
    model = fit(tr, epochs)
    oof[va] = model.predict(x[va], batch_size=256, verbose=0)
    test_prob += model.predict(xt, batch_size=256, verbose=0) / 5
epochs = "/".join(map(str, planned))
print(epochs, float((oof.argmax(1) == y).mean()), " ".join(map(str, test_prob.argmax(1))))
'''


def run_hand(folder: Path, solution: Path, seconds: float) -> dict:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", HAND, str(folder), str(seconds)], capture_output=True, text=True)
    wall = time.monotonic() - began
    if done.returncode:
        raise SystemExit(done.stderr)
    epochs, oof, *labels = done.stdout.split()
    truth = pd.read_csv(solution, dtype=str)["label"].astype(int).to_numpy()
    return {"wall": wall, "oof": float(oof), "holdout": float((np.array(labels, int) == truth).mean()),
            "epochs": epochs}


def main(argv: list[str]) -> int:
    names = [a for a in argv if a in ("mnist5k", "large")] or ["mnist5k"]
    budgets = [a.split("=", 1)[1] for a in argv if a.startswith("budget=")] or ["5m", "15m"]
    print("| dataset | budget | who | wall | OOF accuracy | holdout accuracy |")
    print("|---|---|---|---|---|---|")
    for name in names:
        folder, solution = mnist5k() if name == "mnist5k" else mnist5k_large()
        for budget in budgets:
            comp = run_comp(folder, solution, budget)
            print(f"| {name} | {budget} | comp (defaults) | {comp['wall']:.0f} s | {comp['oof']:.4f} | "
                  f"{comp['holdout']:.4f} |", flush=True)
            hand = run_hand(folder, solution, comp["wall"])
            print(f"| {name} | {budget} | hand-written 5-fold recipe ({hand['epochs']} epochs a fold) | "
                  f"{hand['wall']:.0f} s | {hand['oof']:.4f} | {hand['holdout']:.4f} |", flush=True)
            print(f"comp - hand on the held-back labels: {comp['holdout'] - hand['holdout']:+.4f} "
                  f"(budget {parse_duration(budget):.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
