"""Does `comp run stage=all budget=B` end within its budget, alone and beside a busy process?

`python benchmarks/budget_adherence.py [DEMO ...] [large] [budget=2m ...] [busy] [alone] [code=DIR] [logs=DIR]`
runs the default pipeline on each bundled demo (and `large`: mnist5k upscaled to 256x256,
`pip install -e ".[bench]"`) at each budget, each in a fresh process from the shell's start
(the budget counts from the process start), alone and/or beside one CPU-bound Python loop
(`busy`). Prints wall / budget (the promise: <= 1.05, plus 10 s of start-up), the
submission's OOF score and its score on the hidden test labels, and the run plan's
resolution and epochs a fold, what made the submission and how many fold models stage bag
added. `code=DIR` runs the comp package and plugins found in DIR (a `git worktree` of another
commit), so that a long campaign is not changed by edits to this checkout while it runs;
`logs=DIR` keeps each run's output there (`<name>-<budget>-<alone|busy>.txt`), where an overrun
can be read stage by stage.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from datasets import mnist5k, mnist5k_large  # noqa: E402

from comp.config import parse_duration  # noqa: E402
from comp.demo import DEMOS, cache_root, demo_competition, holdout_score  # noqa: E402


def _spin() -> None:
    while True:
        pass


def _holdout_large(submission: Path, solution: Path) -> tuple[str, float]:
    import pandas as pd

    got = pd.read_csv(submission, dtype=str)["label"]
    truth = pd.read_csv(solution, dtype=str)["label"]
    return "accuracy", float((got == truth).mean())


def run(name: str, budget: str, busy: bool, extra: tuple[str, ...] = (), code: str | None = None,
        logs: str | None = None) -> dict:
    """One `comp run stage=all` of ``name`` (a demo, ``large`` or ``mnist5k``) with ``extra``
    settings: its wall time, scores, plan and what made the submission."""
    if name in ("large", "mnist5k"):
        folder, solution = mnist5k_large() if name == "large" else mnist5k()
        competition, score = str(folder), (lambda path: _holdout_large(path, solution))
    else:
        demo_competition(cache_root(), name)
        competition, score = f"demo:{name}", (lambda path: holdout_score(cache_root(), name, path))
    spinner = multiprocessing.Process(target=_spin, daemon=True) if busy else None
    if spinner:
        spinner.start()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            comp = Path(sys.executable).with_name("comp")
            # the installed package is an editable finder placed after sys.path: PYTHONPATH wins
            env = dict(os.environ, **({"PYTHONPATH": f"{code}{os.pathsep}{Path(code, 'plugins')}"} if code else {}))
            began = time.monotonic()
            done = subprocess.run([str(comp), "run", "stage=all", f"competition={competition}", "run=bench",
                                   f"budget={budget}", *extra], cwd=scratch, capture_output=True, text=True, env=env)
            wall = time.monotonic() - began
            if logs:
                Path(logs).mkdir(parents=True, exist_ok=True)
                Path(logs, f"{name}-{budget}-{'busy' if busy else 'alone'}.txt").write_text(done.stdout + done.stderr)
            if done.returncode != 0:
                return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
            (path,) = Path(scratch, "submissions").glob("*.csv")
            oof = float(re.search(r"^OOF \S+ = ([-\d.]+)", done.stdout, re.MULTILINE).group(1))
            metric, holdout = score(path)
            plan_file = Path(scratch, "runs", "bench", "plan.json")
            plan = json.loads(plan_file.read_text()) if plan_file.is_file() else {}
            bag_file = Path(scratch, "runs", "bench", "bag", "stage.json")
            bagged = json.loads(bag_file.read_text()).get("units", 0) if bag_file.is_file() else 0
    finally:
        if spinner:
            spinner.kill()
    size = plan.get("size")
    return {"wall": wall, "ratio": wall / parse_duration(budget), "oof": oof, "holdout": holdout, "metric": metric,
            "plan": (f"{size[0]}x{size[1]}, " if size else "") + (f"~{plan['epochs']} epochs" if plan else "none"),
            "source": path.name.split("-")[-2] if path.name.count("-") >= 2 else "?", "bagged": bagged}


def main(argv: list[str]) -> int:
    names = [a for a in argv if a in DEMOS or a in ("large", "mnist5k")] or [*DEMOS, "large"]
    budgets = [a.split("=", 1)[1] for a in argv if a.startswith("budget=")] or ["2m", "5m"]
    modes = [m for m in ("alone", "busy") if m in argv] or ["alone", "busy"]
    code = next((a.split("=", 1)[1] for a in argv if a.startswith("code=")), None)
    logs = next((a.split("=", 1)[1] for a in argv if a.startswith("logs=")), None)
    print(f"code: {code or 'this checkout'}")
    print("| competition | budget | beside | wall | wall / budget | OOF | holdout | plan | submitted | bag |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for name in names:
        for budget in budgets:
            for mode in modes:
                r = run(name, budget, mode == "busy", code=code, logs=logs)
                if "error" in r:
                    print(f"| {name} | {budget} | {mode} | failed: {r['error']} |", flush=True)
                    worst = float("inf")
                    continue
                worst = max(worst, r["ratio"])
                print(f"| {name} | {budget} | {'a busy process' if mode == 'busy' else 'nothing'} | {r['wall']:.0f} s "
                      f"| {r['ratio']:.3f} | {r['oof']:.4f} | {r['holdout']:.4f} ({r['metric']}) | {r['plan']} | {r['source']} "
                      f"| {r['bagged']} fold models |",
                      flush=True)
    print(f"worst wall / budget: {worst:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
