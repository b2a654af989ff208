"""comp's default on real tables against AutoGluon given the same budget, side by side.

`pip install -e ".[bench]" && python benchmarks/autogluon_runs.py [TABLE ...] [budget=5m]
autogluon=PYTHON [presets=medium_quality,best_quality] [out=results.jsonl]`

AutoGluon lives in its own environment, never in comp's (it is a benchmark's reference, not
a dependency, and its boosters load their own OpenMP runtime). Make it once:

    python3 -m venv ag && ag/bin/pip install torch==2.13.0 \
        "autogluon.tabular[lightgbm,catboost,xgboost,fastai]==1.6.3"

and pass `autogluon=ag/bin/python`. Each table (benchmarks/tables.py) becomes a competition
with 20% of its rows held back; then, one at a time on the same machine, `comp run stage=all
budget=B` with the defaults (in a fresh process and scratch folder) and AutoGluon's
`TabularPredictor` with each preset and `time_limit=B` (benchmarks/autogluon_fit.py), each
scored on the held-back rows. Prints each one's wall time, its own estimate of its score
(comp's published OOF, AutoGluon's validation score of the model it predicts with) and the
held-back score; with `out=`, one JSON line per table as it finishes.
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
from table_runs import comp_run  # noqa: E402
from tables import SOURCES, competition, holdout, load  # noqa: E402

FIT = Path(__file__).with_name("autogluon_fit.py")


def _seconds(budget: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(float(budget[:-1]) * units[budget[-1]]) if budget[-1] in units else int(budget)


def _autogluon(python: str, folder: Path, target: str, metric: str, preset: str, seconds: int,
               out: Path) -> dict:
    began = time.monotonic()
    done = subprocess.run([python, str(FIT), str(folder), target, metric, preset, str(seconds), str(out)],
                          capture_output=True, text=True)
    wall = time.monotonic() - began
    if done.returncode != 0:
        return {"wall": wall, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return {"wall": wall, **json.loads(done.stdout.strip().splitlines()[-1])}


def main(args: list[str]) -> None:
    options = dict(a.split("=", 1) for a in args if "=" in a)
    if "autogluon" not in options:
        sys.exit("autogluon_runs: say which Python has AutoGluon: autogluon=PATH (see this file's docstring)")
    budget = options.get("budget", "5m")
    presets = options.get("presets", "medium_quality,best_quality").split(",")
    names = [a for a in args if "=" not in a] or list(SOURCES)
    out = Path(options["out"]) if "out" in options else None
    rows = []
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        for name in names:
            table = load(name)
            folder, truth = competition(table, root / "competitions")
            row = {"table": name, "rows": len(table.frame), "metric": table.metric}
            got = comp_run(folder, budget, [], root / f"{name}-comp")
            row["comp_wall"] = round(got["wall"])
            if "error" in got:
                row["comp"] = got["error"][:80]
            else:
                row["comp_oof"] = round(got["oof"], 4)
                row["comp"] = round(holdout(table, truth, got["submission"]), 4)
            for preset in presets:
                label = preset.replace("_quality", "")
                submission = root / f"{name}-{label}.csv"
                got = _autogluon(options["autogluon"], folder, truth.columns[1], table.metric, preset,
                                 _seconds(budget), submission)
                row[f"{label}_wall"] = round(got["wall"])
                if "error" in got:
                    row[label] = got["error"][:80]
                    continue
                row[f"{label}_val"] = round(got["validation"], 4)
                row[label] = round(holdout(table, truth, submission), 4)
                row[f"{label}_models"] = got["models"]
            print(row, flush=True)
            if out:
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
            rows.append(row)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(f"budget={budget}; presets {', '.join(presets)}")
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main(sys.argv[1:])
