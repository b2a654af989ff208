"""`runs/<run>/report.html`: one self-contained page about a run (every picture embedded as
a data URI, no script, no network), written at the end of every ``stage=all`` and by
``comp report``. It reads only what the stages published, through the run directory (each
stage's files checked against their checksums); a stage that has not run gets a line saying
so instead of its part.

This module holds the page's layout. Its sections (``<section id=...>``) are filled by the
stages (``REPORT`` in a stage module: section id -> a function of the ``RunView``), by the
task kind (the errors: ``Task.error_analysis``) and the modality (their gallery): summary
(inspect), budget, stages, training (baseline's learning curves, check's LR range test),
errors, filters and histograms (baseline's first fold model), regularize, tune, bag, ensemble.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from comp import artifacts
from comp.files import write_text
from comp.html import escape, figure, missing, note, table

REPORT = "report.html"
GALLERY = 24  # confident OOF errors shown

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:.3em}
.gallery figure{display:inline-block;margin:.3em;text-align:center;font-size:.75em}
.gallery img{width:72px;height:72px;image-rendering:pixelated;border:1px solid #ccc}
.note{color:#666}.problem{color:#a40}
"""

# (section id, title, the stages whose REPORT fills it, in order; None: this module's own)
SECTIONS = (
    ("summary", "Data", ("inspect",)),
    ("budget", "Budget and time", None),
    ("stages", "Stages", None),
    ("training", "Training", ("baseline", "check")),
    ("errors", "Errors", None),
    ("filters", "First-layer filters", ("baseline",)),
    ("histograms", "Weights, activations and gradients", ("baseline",)),
    ("regularize", "Regularisation, one change at a time", ("regularize",)),
    ("tune", "Tuning trials", ("tune",)),
    ("bag", "More seeds of the final configuration", ("bag",)),
    ("ensemble", "Ensemble and test-time augmentation", ("ensemble",)),
)


class RunView:
    """A finished run as the report reads it: what its stages published, through ``RunDir``."""

    def __init__(self, path: Path, competition: Any, task: Any):
        from comp.rundir import RunDir

        self.path, self.competition, self.task, self.name = Path(path), competition, task, Path(path).name
        self.rundir = RunDir(self.path)

    def record(self, stage: str) -> dict | None:
        return self.rundir.record(stage)

    def result(self, stage: str):
        """The stage's result (``comp.records``), its files checked; None when it has not run."""
        return self.rundir.result(stage) if self.record(stage) else None

    def folder(self, stage: str) -> Path:
        return self.path / stage

    @cached_property
    def config(self):
        """The run's own resolved config (image size, channels), as the stages used it."""
        import yaml

        from comp.config import Config
        from comp.artifacts import PROVENANCE

        saved = yaml.safe_load((self.path / PROVENANCE).read_text())
        return Config.from_dict(saved["config"] if "config" in saved else saved, str(self.path / PROVENANCE))

    def targets(self) -> np.ndarray:
        comp = self.competition
        return self.task.encode(comp.train[comp.target_cols])

    def fold_of(self) -> np.ndarray | None:
        """The folds the training stages scored on: the split's, without any the baseline's
        model failed on (``comp.training.cv.without_folds``)."""
        from comp.training.cv import without_folds

        if not self.record("split"):
            return None
        fold_of = artifacts.read_folds(self.folder("split") / artifacts.FOLDS,
                                       self.competition.train[self.competition.id_col])
        failed = (self.record("baseline") or {}).get("failed_folds", [])
        return without_folds(fold_of, failed) if failed else fold_of

    def final(self):
        """(stage, result) whose OOF predictions were submitted: the ensemble, else the best
        training stage with fold models."""
        from comp.stages import STAGES, TRAINING

        for stage in ("ensemble", *reversed(TRAINING)):
            result = self.result(stage) if stage in STAGES else None
            if result and result.fold_models and (self.folder(stage) / artifacts.OOF_PROBS).is_file():
                return stage, result
        return None


def write_report(run_path: Path, competition: Any, task: Any) -> Path:
    """Write ``run_path/report.html`` from the published stages; returns its path."""
    from comp.stages import STAGES

    run = RunView(run_path, competition, task)
    own = {"budget": _budget, "stages": _stages, "errors": _errors}
    body = []
    for key, title, stages in SECTIONS:
        try:
            content = own[key](run) if stages is None else "".join(STAGES[s].REPORT[key](run) for s in stages)
        except Exception as exc:  # a report must not fail a finished run: say what is missing
            content = note(f"not available: {type(exc).__name__}: {exc}")
        body.append(f'<section id="{key}"><h2>{escape(title)}</h2>{content}</section>')
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>comp report: {escape(run.name)}</title>"
            f"<style>{STYLE}</style></head><body><h1>comp report: {escape(run.name)}</h1>"
            f"<p class='note'>{escape(competition.name)}: task {task.kind}, metric {task.metric_name} "
            f"({'higher' if task.higher_is_better else 'lower'} is better). Every number comes from the run "
            f"directory {escape(run_path)}.</p>{''.join(body)}</body></html>")
    path = run_path / REPORT
    write_text(path, page)
    return path


def _stages_run(run: RunView) -> list[str]:
    from comp.stages import STAGES

    return [s for s in STAGES if run.record(s)]


def _budget(run: RunView) -> str:
    from comp.run_plan import stored

    plan = stored(run.path) or {}
    planned = {name: search["seconds"] for name, search in plan.get("searches", {}).items()}
    if plan:
        planned[plan["stage"]] = plan["main_seconds"]
    rows = []
    for stage in _stages_run(run):
        record = run.record(stage)
        budget = record.get("budget", {})
        rows.append({"stage": stage, "seconds": record.get("seconds"), "planned_s": planned.get(stage),
                     "given_s": budget.get("given_s"), "used_s": budget.get("used_s")})
    if not rows:
        return note("no stage has run")
    frame = pd.DataFrame(rows)
    remark = "" if frame["given_s"].notna().any() else note("no budget= was set: the training stages ran "
                                                              "their own time limits (regularize.time, tune.time)")
    if plan:  # what the run plan decided before training, then what each stage was given and used
        remark += note(" ".join(plan.get("lines", [])))
    return remark + table(frame)


def _stages(run: RunView) -> str:
    rows = []
    for stage in _stages_run(run):
        record = run.record(stage)
        if "score" not in record or stage in ("predict", "submit"):
            continue
        folds = record.get("fold_scores") or []
        honest = record.get("honest_folds")
        rows.append({"stage": stage, "OOF (honest)": record["score"], "+- SE": record.get("score_se"),
                     "chosen on all rows": record.get("score_all_rows", record["score"]),
                     "honest on folds": (", ".join(str(k + 1) for k in honest) if honest
                                         else "none: chosen on the folds it scores" if record.get("selected_on")
                                         else "its folds" if record.get("scored_folds") else "all"),
                     "fold std": float(np.std(folds)) if folds else None,
                     "folds": len(folds) or None, "seconds": record.get("seconds"),
                     "model": (record.get("model") or {}).get("name", record.get("source", ""))})
    if not rows:
        return missing("baseline")
    submitted = run.record("submit")
    extra = (f"<p>Submitted: {escape(Path(submitted['submission']).name)}</p>" if submitted else "")
    return (table(pd.DataFrame(rows)) + note(
        "OOF (honest): what the test set should say; every choice behind it (epochs, views, candidates, blend "
        "weights, a search's trial) made without the rows it scores. Chosen on all rows: the same choices scored "
        "on the rows they were made on, which flatters them; the gap is the optimism. +- SE: the standard error "
        "from the spread of the fold scores; two scores closer than that are tied.") + extra)


def _errors(run: RunView) -> str:
    """The submitted stage's OOF errors as its task kind sees them, shown as the modality shows rows."""
    from comp.modalities import modality_of

    final = run.final()
    if not final:
        return missing("baseline")
    stage, result = final
    task, y = run.task, run.targets()
    oof = np.load(run.folder(stage) / artifacts.OOF_PROBS)
    fold_of = run.fold_of()
    rows = np.flatnonzero(fold_of >= 0) if fold_of is not None else np.arange(len(y))
    comp = run.competition
    found = task.error_analysis(y, oof, rows, result.decoding, task.truth_strings(comp.train[comp.target_cols]),
                                GALLERY)
    parts = [note(f"OOF predictions of stage {stage}")]
    if found is None:
        return "".join(parts) + note(f"task {task.kind} ranks no errors")
    if found.draw is not None:
        parts.append(figure(found.draw, found.alt, size=found.size))
    ids = comp.train[comp.id_col]
    captions = [f"{ids.iloc[i]}: {caption}" for i, caption in zip(found.order, found.captions)]
    parts.append("<h3>Most confident OOF errors (the likeliest label errors)</h3>")
    parts.append(modality_of(comp).gallery(comp, run.config.reading(), found.order, captions))
    return "".join(parts)

