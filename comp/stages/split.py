"""Stage `split`: k-fold assignment of every train row, persisted as folds.csv (docs/recipe.md 2).

Stratified by the task's strata (class, label set, target bin or sequence length). Rows that
share a group - a configured group column, or duplicates found by `inspect` - stay in one
fold, so a duplicate cannot sit on both sides of a split and inflate the CV score. With
``split.time_column`` the folds chain forward in time instead (``comp.time_order``): the
rows before the first validation window are history (fold -2), trained on and never scored.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from comp import artifacts
from comp.context import StageContext
from comp.modalities import modality_of
from comp.errors import DataError
from comp.inspection.duplicates import groups as connected_groups
from comp.files import write_csv

NAME = "split"
HELP = "stratified, group- and duplicate-aware k-fold assignment (folds.csv) used by every later stage"
CONFIG = ("task", "split", "data.on_bad_image")
TRAINS = False
# Until the budget's end (no share of its own).
TIME = None
# Folds may differ from an even split by this much before the log says so. Duplicate groups
# are capped at inspect.max_group_share (1%) of the images, well inside it.
BALANCE_TOLERANCE = 0.10


def inputs(cfg, available, training=()) -> dict[str, str]:
    return {"inspect": "inspect"} if cfg.split.duplicate_aware else {}


def validate(cfg, competition, task) -> None:
    n_folds = cfg.split.folds
    if n_folds < 2:
        raise DataError(f"split.folds={n_folds}: use at least 2 folds")
    group_col = cfg.split.group_column
    if group_col and group_col not in competition.train.columns:
        raise DataError(f"split.group_column={group_col!r} is not a column of train.csv "
                        f"(columns: {', '.join(competition.train.columns)})")
    time_col = cfg.split.time_column
    if time_col:
        from comp.time_order import forward_folds, time_values

        if time_col not in competition.train.columns:
            raise DataError(f"split.time_column={time_col!r} is not a column of train.csv "
                            f"(columns: {', '.join(competition.train.columns)})")
        if time_col in competition.target_cols:
            raise DataError(f"split.time_column={time_col!r} is a target column; name the column of dates")
        forward_folds(time_values(competition.train[time_col], str(competition.root / "train.csv"), time_col), n_folds)
    modality_of(competition).check_readable(competition, "train", cfg.reading())  # before any writing
    if not time_col:  # blocks of time are not stratified: any class may be absent from a window
        task.check_folds(competition.train[competition.target_cols], n_folds)


def run(ctx: StageContext) -> dict:
    comp, task, cfg = ctx.competition, ctx.task, ctx.cfg
    n_folds = cfg.split.folds
    n = len(comp.train)
    left_out = _undecodable_rows(ctx)
    keep = np.setdiff1d(np.arange(n), left_out)
    if cfg.split.time_column:
        return _time_split(ctx, keep, left_out)
    groups, notes = _groups(ctx)
    key = task.strata(comp.train[comp.target_cols])

    fold = np.full(n, -1, dtype=np.int64)
    for k, (_, val) in enumerate(_splitter(key[keep], groups[keep], n_folds, cfg.split.seed)):
        fold[keep[val]] = k
    write_csv(ctx.work / artifacts.FOLDS, pd.DataFrame({"id": comp.train[comp.id_col], "fold": fold}))
    sizes = np.bincount(fold[keep], minlength=n_folds)
    spread = float(np.abs(sizes / (len(keep) / n_folds) - 1).max())

    # Multilabel strata are 0/1 rows: show the number of labels per row.
    shown = key if key.ndim == 1 else key.sum(axis=1)
    table = pd.crosstab(pd.Series(fold[keep], name="fold"), shown[keep])
    table.columns.name = "stratum"
    write_csv(ctx.work / "fold_distribution.csv", table.reset_index())
    for note in notes:
        ctx.log(note)
    if len(left_out):
        ctx.log(f"{len(left_out)} row(s) with undecodable images left out of every fold: "
                + ", ".join(comp.train[comp.id_col].iloc[left_out][:10]))
    ctx.log(f"{n_folds} folds of {len(keep)} rows; rows per fold and {table.columns.name}:\n{table.to_string()}")
    if spread > BALANCE_TOLERANCE:
        largest = np.bincount(groups[keep]).max()
        ctx.log(f"PROBLEM: fold sizes {sizes.tolist()} differ from an even split by up to {spread:.0%} "
                f"(tolerance {BALANCE_TOLERANCE:.0%}): the largest group holds {largest} rows; "
                "check split.group_column or the duplicate groups in inspect/report.md")
    return {"folds": n_folds, "rows": int(len(keep)), "left_out": int(len(left_out)),
            "grouped_rows": int(n - len(np.unique(groups))), "fold_size_spread": round(spread, 4)}


def _time_split(ctx: StageContext, keep: np.ndarray, left_out: np.ndarray) -> dict:
    """Forward-chaining folds on ``split.time_column`` (``comp.time_order``)."""
    from comp.time_order import forward_folds, time_values

    comp, cfg = ctx.competition, ctx.cfg
    column, n_folds = cfg.split.time_column, cfg.split.folds
    values = comp.train[column]
    times = time_values(values, str(comp.root / "train.csv"), column)
    fold = np.full(len(comp.train), -1, dtype=np.int64)
    fold[keep] = forward_folds(times[keep], n_folds)
    write_csv(ctx.work / artifacts.FOLDS, pd.DataFrame({"id": comp.train[comp.id_col], "fold": fold}))
    rows = [np.flatnonzero(fold == k) for k in range(-2, n_folds) if k != -1]
    windows = pd.DataFrame([{"fold": "history" if i == 0 else i - 1, "rows": len(r),
                             "first": values.iloc[r[np.argmin(times[r])]], "last": values.iloc[r[np.argmax(times[r])]]}
                            for i, r in enumerate(rows)])
    write_csv(ctx.work / "fold_distribution.csv", windows)
    if len(left_out):
        ctx.log(f"{len(left_out)} row(s) with undecodable images left out of every fold")
    ctx.log(f"{n_folds} folds forward in time on '{column}' (each learns from the rows before its window; the "
            f"history is never scored; groups and duplicates are not regrouped across time):\n"
            f"{windows.to_string(index=False)}")
    return {"folds": n_folds, "rows": int(len(keep)), "left_out": int(len(left_out)), "time_column": column,
            "history_rows": int((fold == -2).sum()), "grouped_rows": 0, "fold_size_spread": 0.0}


def _splitter(key, groups, n_folds, seed):
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold  # not at import: `comp --help` stays fast

    placeholder = np.zeros(len(key))
    grouped = len(np.unique(groups)) < len(groups)
    if key.ndim == 2:  # several 0/1 targets per row
        from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

        splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        if not grouped:
            return splitter.split(placeholder, key)
        # Iterative stratification over groups: each group votes with the union of its labels.
        uniq, inverse = np.unique(groups, return_inverse=True)
        group_key = np.zeros((len(uniq), key.shape[1]), dtype=int)
        np.maximum.at(group_key, inverse, key)
        return ((np.flatnonzero(~np.isin(inverse, g_val)), np.flatnonzero(np.isin(inverse, g_val)))
                for _, g_val in splitter.split(np.zeros(len(uniq)), group_key))
    if grouped:
        return StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(placeholder, key, groups)
    return StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(placeholder, key)


def _groups(ctx: StageContext) -> tuple[np.ndarray, list[str]]:
    """One group number per train row: the group column and inspect's duplicate groups, merged."""
    comp, cfg = ctx.competition, ctx.cfg
    n = len(comp.train)
    links: list[tuple[int, int]] = []
    notes = []
    if cfg.split.group_column:
        codes = pd.factorize(comp.train[cfg.split.group_column].fillna("<missing>"))[0]
        first = {}
        for i, c in enumerate(codes):
            links.append((first.setdefault(c, i), i))
        notes.append(f"grouped by column '{cfg.split.group_column}' ({len(first)} groups)")
    if "inspect" in ctx.upstream:
        table = pd.read_csv(ctx.rundir.output(ctx.upstream["inspect"]) / artifacts.DUPLICATES, dtype=str)
        row_of = {i: r for r, i in enumerate(comp.train[comp.id_col])}
        train_dups = table[table["split"] == "train"]
        for _, g in train_dups.groupby("group"):
            rows = [row_of[i] for i in g["id"]]
            links += [(rows[0], r) for r in rows[1:]]
        if len(train_dups):
            notes.append(f"{train_dups['group'].nunique()} duplicate group(s) from inspect kept within one fold "
                         f"({len(train_dups)} rows)")
    return connected_groups(n, links), notes


def _undecodable_rows(ctx: StageContext) -> np.ndarray:
    return np.array(modality_of(ctx.competition).unreadable(ctx.competition, "train", ctx.cfg.reading()), dtype=int)
