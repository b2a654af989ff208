"""Stage `inspect`: look at the data before any model (docs/recipe.md 1).

Writes report.md, report.json, duplicates.csv (read by `split`), outliers.csv and
pictures; prints a short summary with the problems first.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from comp import artifacts
from comp.context import StageContext
from comp.files import write_csv, write_json, write_text
from comp.inspection import duplicates as dup
from comp.inspection import shift as adversarial
from comp.inspection.pictures import class_bars
from comp.inspection.report import render_markdown
from comp.modalities import modality_of

NAME = "inspect"
HELP = "class balance, sizes, duplicates, train/test leaks, conflicting labels, corrupt files, outliers"
CONFIG = ("task", "data", "inspect", "split.seed", "split.group_column")
TRAINS = False
# Until the budget's end (no share of its own).
TIME = None


def inputs(cfg, available, training=()) -> dict[str, str]:
    return {}


def run(ctx: StageContext) -> dict:
    comp, task = ctx.competition, ctx.task
    train_ids = comp.train[comp.id_col].tolist()
    ids = train_ids + comp.test_ids
    where = ["train"] * len(train_ids) + ["test"] * len(comp.test_ids)
    labels = task.truth_strings(comp.train[comp.target_cols])
    report: dict = {"competition": str(comp.root), "task": task.kind, "metric": task.metric_name,
                    "rows": {"train": len(train_ids), "test": len(comp.test_ids)}}
    summary = task.summary(comp.train[comp.target_cols], comp.sample)
    report.update(summary.report)
    problems: list[str] = list(summary.problems)
    if summary.counts is not None:
        name = comp.target_cols[0] if len(comp.target_cols) == 1 else "labels"
        class_bars(summary.counts, ctx.work / "class_counts.png", f"{name}: {len(summary.counts)} values")

    found = modality_of(comp).inspect(comp, ctx.cfg.reading(), ctx.cfg.inspect, summary.groups, ctx.work, where, ids)
    report.update(found.report)
    problems += found.problems
    pairs, notes, refused, outliers, bad = found.pairs, found.notes, found.refused, found.outliers, found.bad
    shift_features = found.shift_features

    group_of = dup.groups(len(ids), pairs)
    table = _duplicate_table(group_of, pairs, ids, where, labels)
    write_csv(ctx.work / artifacts.DUPLICATES, table)
    dup_report = _summarise_groups(table)
    dup_report["detectors"] = notes
    dup_report["refused_chains"] = [[f"{where[i]} {ids[i]}" for i in chain] for chain in refused]
    report["duplicates"] = dup_report
    if refused:
        chained = sum(len(c) for c in refused)
        problems.append(f"{chained} look-alike images ({chained / len(ids):.0%}) chain into {len(refused)} "
                        f"near-duplicate group(s) of {', '.join(str(len(c)) for c in refused[:5])} images, e.g. "
                        + ", ".join(f"{where[i]} {ids[i]}" for i in refused[0][:5])
                        + ": not grouped, so folds stay balanced; if they are truly one object, set "
                          "split.group_column, else lower inspect.near_ratio")
    if dup_report["leaks"]:
        problems.append(f"{len(dup_report['leaks'])} train/test leak group(s): " + _fmt_groups(dup_report["leaks"]))
    if dup_report["conflicts"]:
        problems.append(f"{len(dup_report['conflicts'])} duplicate group(s) with conflicting labels: "
                        + _fmt_groups(dup_report["conflicts"]))
    if dup_report["train_groups"]:
        problems.append(f"{len(dup_report['train_groups'])} duplicate group(s) inside train "
                        f"({sum(len(g['ids']) for g in dup_report['train_groups'])} rows; split keeps each in one fold)")

    if shift_features is not None:
        problems += _shift(ctx, report, shift_features, ids, where)
    from comp.time_order import later_test_columns

    for column in later_test_columns(comp.train, comp.test, {comp.id_col, *comp.target_cols}):
        problems.append(f"every test row's '{column}' comes after every train row's: the test set is the future, "
                        f"and shuffled folds would score on the past; split.time_column={column} makes the folds "
                        "forward in time")

    outliers.insert(0, "split", [where[r] for r in outliers["row"]])
    outliers.insert(0, "id", [ids[r] for r in outliers["row"]])
    write_csv(ctx.work / "outliers.csv", outliers.drop(columns="row"))
    report["outliers"] = outliers.drop(columns="row").head(50).to_dict("records")
    real_outliers = outliers[outliers["reasons"] != "cannot be decoded"]
    if len(real_outliers):
        problems.append(f"{len(real_outliers)} outlier image(s), most unusual first: "
                        + ", ".join(f"{r.id} ({r.reasons})" for r in real_outliers.head(5).itertuples()))
    report["problems"] = problems

    write_json(ctx.work / "report.json", report)
    write_text(ctx.work / "report.md", render_markdown(report))
    for line in (problems or ["no problems found"]):
        ctx.log(("PROBLEM: " if problems else "") + line)
    ctx.log(_overview(report))
    ctx.log(f"report: {ctx.rundir.path / NAME / 'report.md'}")
    return {"problems": len(problems), "duplicate_groups": len(dup_report["groups"]),
            "leak_groups": len(dup_report["leaks"]), "conflict_groups": len(dup_report["conflicts"]),
            "corrupt": len(bad), "outliers": int(len(real_outliers))}


def _shift(ctx: StageContext, report: dict, features: pd.DataFrame, ids: list, where: list) -> list[str]:
    """Adversarial validation: its AUC and what differs in report.json, every row's P(test)
    in adversarial.csv; a PROBLEM line when train and test differ."""
    is_test = np.array([w == "test" for w in where])
    found = adversarial.adversarial_validation(features, is_test, ctx.cfg.split.seed)
    if found is None:
        report["shift"] = {"auc": None, "note": "too few rows in train or test to cross-validate"}
        return []
    ranked = pd.DataFrame({"id": ids, "split": where, "p_test": found.p_test.round(4)})
    ranked = ranked.sort_values(["split", "p_test"], ascending=[False, False], kind="stable")
    write_csv(ctx.work / "adversarial.csv", ranked)
    like_test = ranked[ranked["split"] == "train"].head(10)
    unlike_train = ranked[ranked["split"] == "test"].tail(10).iloc[::-1]
    report["shift"] = {"auc": round(found.auc, 4), "differs": [{"feature": f, "auc_drop": d} for f, d in found.differs],
                       "train_most_like_test": like_test["id"].tolist(),
                       "test_least_like_train": unlike_train["id"].tolist()}
    if found.auc <= adversarial.SHIFT_AUC:
        return []
    differs = ", ".join(f"{f} (AUC -{d:.2f} when shuffled)" for f, d in found.differs) or "no single feature"
    return [f"train and test differ: a classifier tells them apart with AUC {found.auc:.2f} (0.5 = alike); "
            f"most different: {differs}; train rows most like test: {', '.join(like_test['id'].head(5))} "
            f"(all ranked in inspect/adversarial.csv: validate on the most test-like rows)"]


def _duplicate_table(group_of, pairs, ids, where, labels) -> pd.DataFrame:
    members = {}
    kinds: dict[int, str] = {}
    for p in pairs:
        g = int(group_of[p.a])
        members.setdefault(g, set()).update((p.a, p.b))
        kinds[g] = "exact" if kinds.get(g, "exact") == "exact" and p.kind == "exact" else "near"
    rows = []
    for number, g in enumerate(sorted(members, key=lambda g: min(members[g]))):
        for i in sorted(members[g]):
            rows.append({"group": number, "id": ids[i], "split": where[i], "kind": kinds[g],
                         "label": labels[i] if where[i] == "train" else ""})
    return pd.DataFrame(rows, columns=["group", "id", "split", "kind", "label"])


def _summarise_groups(table: pd.DataFrame) -> dict:
    groups, leaks, conflicts, train_groups = [], [], [], []
    for number, g in table.groupby("group", sort=True):
        entry = {"group": int(number), "kind": g["kind"].iloc[0], "ids": g["id"].tolist(),
                 "splits": g["split"].tolist(), "labels": g["label"].tolist()}
        groups.append(entry)
        train_labels = set(g.loc[g["split"] == "train", "label"])
        if {"train", "test"} <= set(g["split"]):
            leaks.append(entry)
        if len(train_labels) > 1:
            conflicts.append(entry)
        if (g["split"] == "train").sum() > 1:
            train_groups.append(entry)
    return {"groups": groups, "leaks": leaks, "conflicts": conflicts, "train_groups": train_groups}


def _fmt_groups(groups: list[dict]) -> str:
    parts = []
    for g in groups[:5]:
        members = [f"{s} {i}" + (f" [{l}]" if l else "") for i, s, l in zip(g["ids"], g["splits"], g["labels"])]
        parts.append(f"{g['kind']}: " + " = ".join(members))
    return "; ".join(parts) + (f"; ... {len(groups) - 5} more" if len(groups) > 5 else "")


def _overview(report: dict) -> str:
    parts = [f"{report['rows']['train']} train / {report['rows']['test']} test rows, task {report['task']}"]
    if "classes" in report:
        parts.append(f"{len(report['classes'])} classes, imbalance ratio {report['imbalance_ratio']}")
    if "images" in report:
        im = report["images"]
        parts.append("sizes " + ", ".join(f"{k} ({v})" for k, v in list(im["sizes"].items())[:3])
                     + f", values {im['value_range'][0]}..{im['value_range'][1]}")
    if "features" in report:
        parts.append(f"{len(report['features'])} features")
    if report.get("shift", {}).get("auc") is not None:
        parts.append(f"train vs test AUC {report['shift']['auc']:.3f} (0.5 = alike)")
    return "; ".join(parts)


def _report_summary(run) -> str:
    """The report's data section: the problems first, the class balance and examples."""
    import html
    import json

    from comp.html import missing, note, png

    folder = run.folder(NAME)
    if not run.record(NAME) or not (folder / "report.json").is_file():
        return missing(NAME)
    report = json.loads((folder / "report.json").read_text())
    problems = report.get("problems", [])
    parts = [f"<p>{report.get('rows', {})}</p>".replace("{", "").replace("}", "").replace("'", "")]
    parts.append("<h3>Problems</h3>" + ("<ul>" + "".join(f"<li class='problem'>{html.escape(str(p))}</li>"
                                                          for p in problems) + "</ul>" if problems
                                         else note("inspect found no problems")))
    for name, alt in (("class_counts.png", "class balance"), ("contact_sheet.png", "examples per class")):
        if (folder / name).is_file():
            parts.append(png(folder / name, alt))
    return "".join(parts)


REPORT = {"summary": _report_summary}
