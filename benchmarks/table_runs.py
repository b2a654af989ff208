"""comp's default on real tables, with and without the table portfolio, against plain gradient boosting.

`pip install -e ".[bench]" && python benchmarks/table_runs.py [TABLE ...] [budget=2m] [against=KEY=VALUE ...]
[default=KEY=VALUE ...]`:
each table (benchmarks/tables.py) becomes a competition with 20% of its rows held back; then,
each in a fresh process from a scratch folder, `comp run stage=all budget=B` with the defaults
(`baseline.variants=auto`: gradient boosting, extra trees, a linear model, from 10,000 rows a
second gradient boosting and an MLP) and with
`baseline.variants=[]` (gradient boosting alone, the default before), or with the settings
named by `against=` (e.g. `against=ensemble.stack=false`; `default=KEY=VALUE` changes the
default arm the same way, e.g. two settings of one model), and a plain HistGradientBoosting
with scikit-learn's defaults fitted on the same training rows. `alone` runs the default arm
only. Prints each one's wall time, published OOF and held-back score.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from tables import SOURCES, competition, holdout, load  # noqa: E402


def comp_run(folder: Path, budget: str, extra: list[str], scratch: Path) -> dict:
    """`comp run stage=all` with the defaults (and ``extra``) on a competition folder, in a new
    folder ``scratch``: its wall time, submission, published OOF, blend and stacking outcome."""
    scratch.mkdir()
    exe = Path(sys.executable).with_name("comp")
    began = time.monotonic()
    done = subprocess.run([str(exe), "run", "stage=all", f"competition={folder}", "run=bench", f"budget={budget}",
                           *extra], cwd=scratch, capture_output=True, text=True)
    wall = time.monotonic() - began
    if done.returncode != 0:
        return {"wall": wall, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    found = re.findall(r"^submission: (submissions/.+\.csv)$", done.stdout + done.stderr, re.M)
    oof = re.search(r"^OOF \S+ = ([\d.]+)", done.stdout + done.stderr, re.M)
    record = json.loads((scratch / "runs/bench/ensemble/stage.json").read_text())
    stack = record.get("stack")  # the stacker's nested gain over the blend, and whether it was kept
    return {"wall": wall, "submission": scratch / found[-1], "oof": float(oof.group(1)),
            "used": record.get("blend", {}).get("used"),
            "stack": "not tried" if stack is None else f"{stack['gain']:+.4f}" + (" kept" if stack["kept"] else "")}


def _plain_hgb(table, folder: Path, truth: pd.DataFrame) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    train, test = pd.read_csv(folder / "train.csv"), pd.read_csv(folder / "test.csv")
    target = truth.columns[1]
    x, xt = train.drop(columns=["id", target]), test.drop(columns=["id"])
    for col in x.columns:
        if not pd.api.types.is_numeric_dtype(x[col]):
            # the 250 most frequent values (HistGradientBoosting takes at most 255), the rest missing
            top = x[col].value_counts().index[:250]
            cats = pd.CategoricalDtype(sorted(top))
            x[col], xt[col] = x[col].where(x[col].isin(top)).astype(cats), xt[col].where(xt[col].isin(top)).astype(cats)
    classifier = table.task == "classification"
    model = (HistGradientBoostingClassifier if classifier else HistGradientBoostingRegressor)(
        categorical_features="from_dtype", random_state=0).fit(x, train[target])
    if table.metric == "roc_auc":
        pred = model.predict_proba(xt)[:, 1]
    else:
        pred = model.predict(xt)
    out = folder.parent / f"{table.name}-plain.csv"
    pd.DataFrame({"id": test["id"], target: pred}).to_csv(out, index=False)
    return holdout(table, truth, out)


def main(args: list[str]) -> None:
    budget = next((a.split("=", 1)[1] for a in args if a.startswith("budget=")), "2m")
    names = [a for a in args if "=" not in a] or list(SOURCES)
    against = [a.split("=", 1)[1] for a in args if a.startswith("against=")]
    base = [a.split("=", 1)[1] for a in args if a.startswith("default=")]
    runs = (("against", against), ("default", base)) if against else (("hgb_only", ["baseline.variants=[]"]),
                                                                      ("portfolio", base))
    if "alone" in names:  # the default arm only
        names = [n for n in names if n != "alone"] or list(SOURCES)
        runs = (("default", base),)
    rows = []
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        for name in names:
            table = load(name)
            folder, truth = competition(table, root / "competitions")
            row = {"table": name, "rows": len(table.frame), "metric": table.metric,
                   "plain_hgb": round(_plain_hgb(table, folder, truth), 4)}
            for label, extra in runs:
                got = comp_run(folder, budget, extra, root / f"{name}-{label}")
                if "error" in got:
                    row[label] = got["error"][:80]
                    continue
                row[f"{label}_wall"] = round(got["wall"])
                row[f"{label}_oof"] = round(got["oof"], 4)
                row[f"{label}_used"] = got["used"]
                if label in ("default", "portfolio"):
                    row["stack_gain"] = got["stack"]
                row[label] = round(holdout(table, truth, got["submission"]), 4)
            print(row, flush=True)
            rows.append(row)
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(f"budget={budget}" + (f"; against: {' '.join(against)}" if against else ""))
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main(sys.argv[1:])
