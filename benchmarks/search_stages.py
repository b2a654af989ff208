"""The whole pipeline under a budget: what regularize and tune add to the baseline, side by side.

`python benchmarks/search_stages.py [digits] [mnist5k] [budget=10m]` runs
`comp run stage=all budget=B` once per dataset and prints, from the run's own records: the
budget each training stage got and used, the baseline's OOF, regularize's changes (kept or
not), tune's trials and verdict, the ensemble's candidates (OOF without and with test-time
views, weights) and its result, the accuracy of the submission on the held-back labelled
test part next to that of the baseline's fold models alone (`predict.source=baseline` in the
same run directory afterwards), and the wall time. The tables are printed as the run wrote them. mnist5k needs `pip install -e ".[bench]"`.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from recipe_defaults import dataset  # noqa: E402


def run(name: str, budget: str) -> None:
    competition, solution = dataset(name)
    with tempfile.TemporaryDirectory() as scratch:
        began = time.monotonic()
        comp = Path(sys.executable).with_name("comp")
        done = subprocess.run([str(comp), "run", "stage=all", f"competition={competition}", "run=bench", budget],
                              cwd=scratch, capture_output=True, text=True)
        elapsed = time.monotonic() - began
        if done.returncode:
            print(done.stdout[-3000:], done.stderr[-3000:])
            raise SystemExit(f"{name}: comp exited {done.returncode}")
        run_dir = Path(scratch, "runs/bench")
        records = {s: json.loads((run_dir / s / "stage.json").read_text())
                   for s in ("baseline", "regularize", "tune", "ensemble", "predict")}
        (path,) = Path(scratch, "submissions").glob("*.csv")
        truth = pd.read_csv(solution, dtype=str)["label"]

        def holdout_of(file: Path) -> float:
            return float((pd.read_csv(file, dtype=str)["label"] == truth).mean())

        holdout = holdout_of(path)
        alone = subprocess.run([str(comp), "run", "stage=submit", f"competition={competition}", "run=bench",
                                "predict.source=baseline"], cwd=scratch, capture_output=True, text=True)
        found = [p for p in Path(scratch, "submissions").glob("*.csv") if p != path]
        baseline_holdout = holdout_of(found[0] if found else path) if not alone.returncode else float("nan")
        budgets = ", ".join(f"{s} {records[s]['budget']['used_s']:.0f}/{records[s]['budget']['given_s']:.0f}s"
                            for s in ("baseline", "regularize", "tune") if "budget" in records[s])
        tune = records["tune"]
        print(f"\n### {name}, {budget}: {elapsed:.0f} s wall\n")
        print(f"- used/given: {budgets}")
        final = (f"trained on every fold: OOF {tune['score']:.5f}" if tune.get("fold_models")
                 else "the baseline's configuration, not trained again")
        print(f"- baseline OOF {records['baseline']['score']:.5f}; regularize kept "
              f"{', '.join(records['regularize']['kept']) or 'nothing'}; tune: {tune['verdict']}; its result {final}")
        blend = records["ensemble"]["blend"]
        members = ", ".join(f"{m['name']} {m['weight']:.2f}" + (f" +{len(m['views'])} views" if m["views"] else "")
                            for m in records["ensemble"]["members"])
        print(f"- ensemble: {blend['used']} ({members}); OOF {records['ensemble']['score']:.5f}, best single "
              f"candidate {blend['best_single']} {blend['best_single_score']:.5f}, blend nested "
              f"{blend['nested_score'] if blend['nested_score'] is None else round(blend['nested_score'], 5)}")
        print(f"- submitted {path.name}: holdout accuracy {holdout:.4f}; the baseline's fold models alone "
              f"{baseline_holdout:.4f}")
        for sentence in tune.get("edges", []):
            print(f"- edge: {sentence}")
        table = pd.read_csv(run_dir / "regularize/table.csv")
        print("\nregularize:\n\n" + table.drop(columns=["what"]).to_string(index=False))
        trials = pd.read_csv(run_dir / "tune/trials.csv")
        shown = [c for c in ("phase", "trial", "oof", "fold_std", "seconds", "epochs", "status") if c in trials]
        print("\ntune:\n\n" + trials[shown].to_string(index=False), flush=True)
        candidates = pd.read_csv(run_dir / "ensemble/candidates.csv")
        print("\nensemble:\n\n" + candidates.to_string(index=False), flush=True)


def main(argv: list[str]) -> int:
    names = [a for a in argv if a in ("digits", "mnist5k")] or ["digits", "mnist5k"]
    budgets = [a for a in argv if a.startswith("budget=")] or ["budget=10m"]
    for name in names:
        for budget in budgets:
            run(name, budget)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
