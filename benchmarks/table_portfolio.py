"""Which table models earn a place in ``baseline.variants=auto``? Each model's 5-fold OOF score
and seconds, and the nested greedy blend of all of them with each one left out in turn.

`pip install -e ".[bench]" && python benchmarks/table_portfolio.py [TABLE ...]` (tables from
benchmarks/tables.py; default: all). The models are the plugins themselves, with their
default knobs, fitted on the same stratified folds outside the pipeline (no budget), so the
question is only what each family adds to a blend of the others.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from tables import SOURCES, load  # noqa: E402

MODELS = ("hgb", "random_forest", "extra_trees", "linear", "knn")


class _Role:
    def __init__(self, role: str):
        self.estimator_role = role


def _features(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    x = frame.drop(columns=[target]).copy()
    for col in x.columns:
        if x[col].dtype == object or str(x[col].dtype) in ("category", "bool", "string"):
            x[col] = x[col].astype(str).where(x[col].notna()).astype("category")
        else:
            x[col] = x[col].astype(float)
    return x


def _scorer(metric: str, classes: int):
    from sklearn.metrics import accuracy_score, roc_auc_score

    if metric == "roc_auc":
        return (lambda y, p: roc_auc_score(y, p[:, 1])), True
    if metric == "accuracy":
        return (lambda y, p: accuracy_score(y, p.argmax(1))), True
    return (lambda y, p: float(np.sqrt(np.mean((y - p[:, 0]) ** 2)))), False


def main(names: list[str]) -> None:
    import keras_tuner as kt
    from sklearn.model_selection import KFold, StratifiedKFold

    from comp.blending import nested_selection
    from comp.objective import Objective
    from comp.registry import MODELS as REGISTRY

    rows = []
    for name in names:
        table = load(name)
        x = _features(table.frame, table.target)
        classification = table.task == "classification"
        if classification:
            y_raw = table.frame[table.target]
            classes = sorted(y_raw.unique())
            y = y_raw.map({c: i for i, c in enumerate(classes)}).to_numpy()
            splitter = StratifiedKFold(5, shuffle=True, random_state=0)
        else:
            y, classes = table.frame[table.target].to_numpy(dtype=float), []
            splitter = KFold(5, shuffle=True, random_state=0)
        fold_of = np.zeros(len(y), dtype=int)
        for k, (_, val) in enumerate(splitter.split(x, y)):
            fold_of[val] = k
        score, higher = _scorer(table.metric, len(classes))
        objective = Objective(higher)
        oof, seconds = {}, {}
        for model in MODELS:
            plugin = REGISTRY.load(model)
            role = _Role("classifier" if classification else "regressor")
            pred = np.zeros((len(y), max(len(classes), 1)), dtype=np.float64)
            began = time.monotonic()
            for k in range(5):
                fit, val = fold_of != k, fold_of == k
                est = plugin.build(None, role, kt.HyperParameters()).fit(x[fit], y[fit])
                pred[val] = est.predict_proba(x[val]) if classification else est.predict(x[val])[:, None]
            oof[model], seconds[model] = pred, time.monotonic() - began
            print(f"{name} {model}: {score(y, pred):.4f} ({seconds[model]:.1f}s)", flush=True)

        def blended(members):
            preds = [oof[m].astype(np.float32) for m in members]
            out, _ = nested_selection(preds, fold_of, lambda r, p: score(y[r], p), objective, 25)
            return score(y, out)

        row = {"table": name, "rows": len(y), "metric": table.metric,
               **{m: round(score(y, oof[m]), 4) for m in MODELS},
               **{f"s_{m}": round(seconds[m], 1) for m in MODELS}}
        row["blend_all"] = round(blended(MODELS), 4)
        for m in MODELS:
            row[f"blend_without_{m}"] = round(blended([o for o in MODELS if o != m]), 4)
        print(row, flush=True)
        rows.append(row)
    frame = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(frame.to_string(index=False))


if __name__ == "__main__":
    main(sys.argv[1:] or list(SOURCES))
