"""Is the reported OOF what the test set says? And on labels that are noise, is it chance?

`python benchmarks/honest_scores.py [DEMO ...] [mnist5k] [budget=2m] [shuffled] [real] [code=DIR]`
runs `comp run stage=all` on each competition (the bundled demos by name, `mnist5k` with
`pip install -e ".[bench]"`) and prints, for every stage that published a score, its score
with its standard error, the score with the choices made on all rows where the stage keeps
one, and the submission's score on the held-back test labels. `shuffled` permutes the train
labels first (the test labels stay): nothing can be learnt, so every published score should
sit at chance, which the held-back score shows. `forced` is `shuffled` with the searches'
keep gate forced open (``comp.stages.trials.gate`` patched to keep whatever regularize and
tune found): their choices are then made on noise, and their published (honest) scores must
still sit at chance. `code=DIR` runs the comp package found in DIR (e.g. a `git worktree` of an
earlier commit) to compare before and after.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from datasets import mnist5k  # noqa: E402

from comp.demo import DEMOS, cache_root, demo_competition, holdout_score  # noqa: E402

STAGES = ("baseline", "regularize", "tune", "ensemble")


def _competition(name: str, scratch: Path, shuffled: bool) -> tuple[Path, callable]:
    if name == "mnist5k":
        folder, solution = mnist5k()

        def score(path: Path) -> tuple[str, float]:
            got, truth = pd.read_csv(path, dtype=str)["label"], pd.read_csv(solution, dtype=str)["label"]
            return "accuracy", float((got == truth).mean())
    else:
        folder = demo_competition(cache_root(), name)

        def score(path: Path) -> tuple[str, float]:
            return holdout_score(cache_root(), name, path)
    if not shuffled:
        return folder, score
    copy = scratch / f"{name}-shuffled"
    shutil.copytree(folder, copy, symlinks=True)
    train = pd.read_csv(copy / "train.csv", dtype=str, keep_default_na=False)
    sample = pd.read_csv(copy / "sample_submission.csv", nrows=0)
    targets = [c for c in sample.columns[1:] if c in train.columns] or [train.columns[-1]]
    order = np.random.default_rng(0).permutation(len(train))
    train[targets] = train[targets].iloc[order].to_numpy()  # whole target rows move together
    train.to_csv(copy / "train.csv", index=False)
    return copy, score


FORCED = "--forced-keep"  # this file as a launcher: `comp run ...` with the searches' gate open


def _launch_forced(argv: list[str]) -> int:
    import dataclasses

    import comp.stages.trials as trials
    from comp.cli import main as comp_main

    real = trials.gate

    def kept(*args, **kwargs):
        verdict = real(*args, **kwargs)
        print(f"[forced] the gate said {'keep' if verdict.keep else 'no'} (gain {verdict.gain:+.4f}); kept",
              flush=True)
        return dataclasses.replace(verdict, keep=True)

    trials.gate = kept
    return comp_main(argv)


def run(name: str, budget: str, shuffled: bool, code: str | None, forced: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        folder, score = _competition(name, Path(scratch), shuffled or forced)
        env = dict(os.environ, **({"PYTHONPATH": code} if code else {}))
        began = time.monotonic()
        launcher = [str(Path(__file__).resolve()), FORCED] if forced else ["-m", "comp"]
        done = subprocess.run([sys.executable, *launcher, "run", "stage=all", f"competition={folder}",
                               "run=bench", f"budget={budget}"], cwd=scratch, capture_output=True, text=True, env=env)
        wall = time.monotonic() - began
        if done.returncode != 0:
            return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
        forced_lines = [line for line in done.stdout.splitlines() if line.startswith("[forced]")]
        (path,) = Path(scratch, "submissions").glob("*.csv")
        metric, holdout = score(path)
        stages = {}
        for stage in STAGES:
            record = Path(scratch, "runs", "bench", stage, "stage.json")
            if record.is_file():
                data = json.loads(record.read_text())
                data = data.get("result", data)
                if "score" in data:
                    stages[stage] = data
    return {"wall": wall, "metric": metric, "holdout": holdout, "stages": stages, "file": path.name,
            "forced": forced_lines}


def _cell(record: dict) -> str:
    se = record.get("score_se")
    text = f"{record['score']:.4f}" + (f" ± {se:.4f}" if se is not None and np.isfinite(se) else "")
    if "score_all_rows" in record and record["score_all_rows"] != record["score"]:
        text += f" (all rows {record['score_all_rows']:.4f})"
    if not record.get("fold_models", True):
        text += " (its folds)"
    return text


def main(argv: list[str]) -> int:
    names = [a for a in argv if a in DEMOS or a == "mnist5k"] or ["digits", "breast-cancer", "mnist5k"]
    budget = next((a.split("=", 1)[1] for a in argv if a.startswith("budget=")), "2m")
    code = next((a.split("=", 1)[1] for a in argv if a.startswith("code=")), None)
    modes = [m for m in ("real", "shuffled", "forced") if m in argv] or ["real", "shuffled"]
    print(f"code: {code or 'this checkout'}, budget={budget}")
    print("| competition | labels | " + " | ".join(STAGES) + " | held-back test | wall |")
    print("|---|---|" + "---|" * len(STAGES) + "---|---|")
    for name in names:
        for mode in modes:
            r = run(name, budget, mode == "shuffled", code, forced=mode == "forced")
            if "error" in r:
                print(f"| {name} | {mode} | failed: {r['error']} |", flush=True)
                continue
            cells = [_cell(r["stages"][s]) if s in r["stages"] else "-" for s in STAGES]
            print(f"| {name} | {mode} | " + " | ".join(cells) + f" | {r['holdout']:.4f} ({r['metric']}) "
                  f"| {r['wall']:.0f} s |", flush=True)
            for line in r["forced"]:
                print(f"  {line}", flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == [FORCED]:
        sys.exit(_launch_forced(sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
