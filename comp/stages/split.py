"""Stage `split`: stratified k-fold assignment of every train row, persisted as folds.csv."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from comp import artifacts
from comp.context import StageContext
from comp.errors import DataError
from comp.rundir import write_csv

NAME = "split"
HELP = "stratified k-fold assignment (folds.csv) used by every later stage"
CONFIG = ("task", "split")
TRAINS = False


def inputs(cfg, available) -> dict[str, str]:
    return {}


def run(ctx: StageContext) -> dict:
    comp, task, n_folds = ctx.competition, ctx.task, ctx.cfg.split.folds
    labels = comp.train[task.target]
    counts = labels.value_counts()
    if n_folds < 2:
        raise DataError(f"split.folds={n_folds}: use at least 2 folds")
    if counts.min() < n_folds:
        raise DataError(
            f"train.csv: class {counts.idxmin()!r} has {counts.min()} example(s), fewer than "
            f"split.folds={n_folds}; lower split.folds or add examples of that class"
        )
    y = task.stratify_labels(task.encode(labels))
    fold = np.empty(len(y), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=ctx.cfg.split.seed)
    for k, (_, val_idx) in enumerate(splitter.split(np.zeros(len(y)), y)):
        fold[val_idx] = k
    write_csv(ctx.work / artifacts.FOLDS, pd.DataFrame({"id": comp.train[comp.id_col], "fold": fold}))

    table = pd.crosstab(pd.Series(fold, name="fold"), labels.rename("class").to_numpy())
    table.columns.name = task.target
    write_csv(ctx.work / "fold_distribution.csv", table.reset_index())
    ctx.log(f"{n_folds} stratified folds of {len(y)} rows; rows per fold and class:\n{table.to_string()}")
    return {"folds": n_folds, "rows": int(len(y))}
