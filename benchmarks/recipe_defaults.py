"""The default recipe vs the textbook baseline it replaced, at fixed budgets, side by side.

`python benchmarks/recipe_defaults.py [digits] [mnist5k] [budget=5m] [budget=15m]` runs
`comp run stage=all budget=B` on each dataset twice: with the defaults ("after") and with
`experiment=textbook` (Adam at a constant 3e-4, no BatchNorm, no augmentation; early
stopping where no budget plans the run: the defaults before, "before"), and prints OOF
accuracy, accuracy on the held-back labelled test part and wall time. mnist5k needs `pip install -e ".[bench]"`.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from datasets import mnist5k  # noqa: E402

from comp.demo import cache_root, demo_competition, solution_path  # noqa: E402

CONFIGS = {"before (experiment=textbook)": ["experiment=textbook"], "after (defaults)": []}


def dataset(name: str) -> tuple[str, Path]:
    if name == "digits":
        demo_competition(cache_root())
        return "demo:digits", solution_path(cache_root())
    folder, solution = mnist5k()
    return str(folder), solution


def run(competition: str, solution: Path, args: list[str]) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as scratch:
        began = time.monotonic()
        comp = Path(sys.executable).with_name("comp")
        subprocess.run([str(comp), "run", "stage=all", f"competition={competition}", *args], cwd=scratch,
                       check=True, capture_output=True)
        elapsed = time.monotonic() - began
        (path,) = Path(scratch, "submissions").glob("*.csv")
        got = pd.read_csv(path, dtype=str)["label"]
        truth = pd.read_csv(solution, dtype=str)["label"]
        return float(path.stem.rsplit("=", 1)[1]), float((got == truth).mean()), elapsed


def main(argv: list[str]) -> int:
    names = [a for a in argv if a in ("digits", "mnist5k")] or ["digits", "mnist5k"]
    budgets = [a for a in argv if a.startswith("budget=")] or ["budget=5m", "budget=15m"]
    print("| dataset | budget | config | OOF accuracy | holdout accuracy | wall |")
    print("|---|---|---|---|---|---|")
    for name in names:
        competition, solution = dataset(name)
        for budget in budgets:
            for label, args in CONFIGS.items():
                oof, holdout, seconds = run(competition, solution, [budget, *args])
                print(f"| {name} | {budget.split('=')[1]} | {label} | {oof:.4f} | {holdout:.4f} | {seconds:.0f} s |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
