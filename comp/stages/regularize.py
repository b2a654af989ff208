"""Stage `regularize`: one change at a time from the baseline's configuration, kept only when
the OOF score improves beyond noise (docs/recipe.md 5).

Each change (label smoothing, weight decay, mixup, stronger augmentation, the model plugin's
own regularizers such as dropout, cutmix, a smaller input) trains on the first
``regularize.folds`` folds with the baseline's LR and epochs, and is compared with the
configuration it changes on the same folds: kept when its OOF gain exceeds the standard
error of the paired per-fold gains. Kept changes accumulate. The changes are ordered by
expected gain per second (from measurements, docs/recipe.md 5) and tried while the
stage's time lasts: ``budget=``'s share, or without one ``regularize.time`` x the
baseline's training time; what did not fit is listed as not tried.

Writes ``table.csv`` (what was tried, OOF, fold std, gain, noise, kept, seconds),
``best.yaml`` (the kept changes: ``comp run config=runs/<run>/regularize/best.yaml``
trains with them) and ``trials/<change>/`` (each trial's fold models). Stage ``tune``
searches around the result and trains the final configuration on every fold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from comp.budget import Share
from comp.clock import TimeBox
from comp.context import StageContext
from comp.errors import ConfigError
from comp.modalities import modality_of
from comp.files import write_csv

NAME = "regularize"
HELP = ("try one regularisation change at a time from the baseline (on regularize.folds folds); keep what beats "
        "noise; table.csv and best.yaml")
CONFIG = ("seed", "regularize", "task", "metric", "data", "train", "model", "predict.batch_size",
          "split.group_column")
TRAINS = True
FOLD_MODELS = False  # its trials train some folds only: nothing predict can use (the ensemble reads tune's)
# Of the training time: one change at a time on two folds needs less than the baseline.
TIME = Share(training=0.25)
OPTIONAL = True  # it only improves on what the stages before it published: a failure costs itself, not the run
TABLE = "table.csv"


def least_seconds(cfg, fold_seconds: float, epochs: int, folds: int) -> float | None:
    """The run plan's question: the least time worth starting this stage with (one change);
    None when it has no change to try."""
    from comp.stages.trials import trial_folds

    if not cfg.regularize.changes:
        return None
    return fold_seconds * len(trial_folds(cfg.regularize.folds, folds))


@dataclass(frozen=True)
class Change:
    """A regularisation change: ``make(setting)`` gives the dotted config changes, or a
    string saying why it does not apply. ``gain`` is the expected OOF gain (metric points on
    a 0-1 accuracy-like scale, from benchmarks/README.md), ``cost`` its time relative to the
    configuration it changes."""

    name: str
    help: str
    gain: float
    cost: float
    make: Callable[["Setting"], dict[str, Any] | str]


@dataclass
class Setting:
    """What a change needs to know about the configuration it changes."""

    cfg: Any
    modality: Any  # comp.modalities.Modality
    task: Any
    keras: bool
    policy: tuple[str, ...]  # the augmentation policy entries
    regularizers: dict[str, Any]  # the model plugin's declared stronger knob values
    knobs: dict[str, Any]  # the plugin's knob values now
    image_size: tuple[int, int] | None


def _label_smoothing(s: Setting):
    if not s.keras:
        return "the model is not a Keras model"
    if not s.task.smoothable:
        return f"task {s.task.kind} has no labels to smooth"
    smoothing = s.task.label_smoothing(s.cfg.train.label_smoothing)
    if smoothing >= 0.1:
        return f"train.label_smoothing is already {smoothing:g}" + (
            " (auto)" if s.cfg.train.label_smoothing == "auto" else "")
    return {"train.label_smoothing": 0.1}


def _weight_decay(s: Setting):
    if not s.keras:
        return "the model is not a Keras model"
    if s.cfg.train.optimizer == "adam":
        return "train.optimizer=adam has no decoupled weight decay (use adamw)"
    wd = s.cfg.train.weight_decay
    return {"train.weight_decay": round(wd * 5, 6) if wd else 0.01}


def _mix(name: str):
    def make(s: Setting):
        if not s.keras or not s.modality.augmentable:
            return "mixes images only"
        if not _usable(name, s):
            return f"augmentation {name} is not installed or does not preserve {s.task.kind} labels"
        if any(_batch(entry) for entry in s.policy):
            return "the policy already mixes batches"
        return {"train.augmentations": [*s.policy, name]}

    return make


def _stronger_augmentation(s: Setting):
    from comp.augmentation import parse_entry, resolve

    if not s.keras or not s.modality.augmentable:
        return "no image augmentation to strengthen"
    entries, changed = [], False
    for entry in s.policy:
        aug, strength = resolve(entry, s.modality.name, s.task.kind)
        if aug.strength is None or aug.batch:
            entries.append(entry)
            continue
        current = aug.strength if strength is None else strength
        stronger = min(current * 1.5, aug.strength_range[1])
        changed |= stronger > current
        entries.append(f"{parse_entry(entry)[0]}:{stronger:.4g}")
    return {"train.augmentations": entries} if changed else "the policy has no strength to raise"


def _plugin_regularizers(s: Setting):
    changes = {f"model.hp.{knob}": value for knob, value in s.regularizers.items() if s.knobs.get(knob) != value}
    if not changes:
        return "the model plugin declares no stronger setting (api.regularizers)"
    return changes


def _flip(s: Setting):
    """Left-right mirroring as a training augmentation: the defaults leave it out (a mirrored
    digit is another label), the OOF gate says whether this competition's labels survive it."""
    if not s.keras or not s.modality.augmentable:
        return "mirrors images only"
    if not _usable("flip", s):
        return f"augmentation flip is not installed or does not preserve {s.task.kind} labels"
    from comp.augmentation import parse_entry

    if any(parse_entry(e)[0] == "flip" for e in s.policy):
        return "the policy already mirrors"
    return {"train.augmentations": [*s.policy, "flip"]}


def _smaller_input(s: Setting):
    return s.modality.smaller_input(s.image_size)


def _usable(name: str, s: Setting) -> bool:
    from comp.registry import AUGMENTATIONS

    if name not in {info.name for info in AUGMENTATIONS.list()}:
        return False
    aug = AUGMENTATIONS.load(name)
    return s.modality.name in aug.modalities and s.task.kind in aug.tasks


def _batch(entry: str) -> bool:
    from comp.augmentation import parse_entry
    from comp.registry import AUGMENTATIONS

    return bool(AUGMENTATIONS.load(parse_entry(entry)[0]).batch)


# Expected gains: benchmarks/README.md, one change at a time on mnist5k (3 folds, 20 epochs):
# label smoothing +0.0018, weight decay x5 +0.0005, mixup +0.0003, cutmix -0.011; the others
# are not measured yet and get a small prior (flip: worth points on photographs, a loss on
# digits; the gate tells them apart). A smaller input is tried for its speed.
CHANGES = (
    Change("label_smoothing", "label smoothing 0.1", 0.0018, 1.0, _label_smoothing),
    Change("weight_decay", "5x the decoupled weight decay", 0.0005, 1.0, _weight_decay),
    Change("mixup", "mixup in every batch", 0.0003, 1.05, _mix("mixup")),
    Change("stronger_augmentation", "every augmentation strength x1.5", 0.0003, 1.0, _stronger_augmentation),
    Change("model_regularizers", "the model plugin's stronger settings (e.g. dropout)", 0.0003, 1.0,
           _plugin_regularizers),
    Change("flip", "left-right mirroring as an augmentation", 0.001, 1.0, _flip),
    Change("smaller_input", "images at 3/4 of the size", 0.0001, 0.6, _smaller_input),
    Change("cutmix", "cutmix in every batch", -0.011, 1.05, _mix("cutmix")),
)
BY_NAME = {c.name: c for c in CHANGES}


def inputs(cfg, available, training=()) -> dict[str, str]:
    deps = {"split": "split", "baseline": "baseline"}
    if cfg.train.lr == "auto":
        deps["check"] = "check"
    return deps


def validate(cfg, competition, task) -> None:
    from comp.stages.training import validate_model

    validate_model(cfg, competition, task)
    chosen = cfg.regularize.changes
    if chosen != "auto":
        for name in chosen:
            if str(name) not in BY_NAME:
                raise ConfigError(f"regularize.changes: no change named {name!r}; the changes: {', '.join(BY_NAME)}")
    if cfg.regularize.folds != "all" and cfg.regularize.folds < 2:
        raise ConfigError("regularize.folds=1 gives no fold-wise noise estimate to beat; use 2 or more (or all)")


def ordered(cfg) -> list[Change]:
    """The changes to try, in order: as listed, or (auto) by expected gain per unit of time."""
    if cfg.regularize.changes != "auto":
        return [BY_NAME[str(n)] for n in cfg.regularize.changes]
    return sorted(CHANGES, key=lambda c: -c.gain / c.cost)


def plugin_defaults(cfg, competition, task, rows: int = 0) -> dict[str, Any]:
    """The model plugin's knobs and their defaults (a probe build: ask once per stage) for a
    fold of ``rows`` training rows (``fold_training_rows``; 0: not known)."""
    from comp.stages.training import model_name
    from comp.training.model import plugin_space

    return {p.name: p.default for p in plugin_space(model_name(cfg, competition, task), competition.modality, task,
                                                    rows)}


def setting(cfg, competition, task, image_size, defaults: dict[str, Any] | None = None) -> Setting:
    """What the changes need to know about ``cfg`` (``defaults``: ``plugin_defaults``'s answer)."""
    from comp.api import EstimatorModel, plugin_regularizers
    from comp.registry import MODELS
    from comp.stages.training import augmentations, model_name

    name = model_name(cfg, competition, task)
    plugin = MODELS.load(name)
    estimator = isinstance(plugin, EstimatorModel)
    if defaults is None:
        defaults = plugin_defaults(cfg, competition, task)
    knobs = {**defaults, **dict(cfg.model.hp)}
    declared = plugin.regularizers if estimator else plugin_regularizers(plugin)
    return Setting(cfg, modality_of(competition), task, not estimator, augmentations(cfg, competition, task),
                   declared, knobs, image_size)


def run(ctx: StageContext) -> dict[str, Any]:
    import json

    from comp.significance import FALSE_KEEP
    from comp.stages.trials import (Trial, TrialObjective, base_epochs, baseline_fold_seconds, baseline_trial,
                                    count_remote_failures, finished_trial, forward_in_time, gate, lr_setting,
                                    phase_ended, search_record, search_window, trial_folds, write_best)
    from comp.tuning.search import search
    from comp.tuning.sequential import SequentialOracle

    cfg, task = ctx.cfg, ctx.task
    lr, epochs = _lr(ctx), base_epochs(ctx)
    baseline = ctx.rundir.result(ctx.upstream["baseline"])
    folds = trial_folds(cfg.regularize.folds, baseline.folds, forward_in_time(ctx))
    unit = baseline_fold_seconds(ctx) * len(folds)  # one trial of the baseline's configuration
    box, limit = search_window(ctx, cfg.regularize.time, "regularize.time")
    start = baseline_trial(ctx, folds)
    image_size = tuple(baseline.input_shape[:2]) if baseline.input_shape else None
    ctx.log(f"{len(folds)} of {baseline.folds} folds per change, {epochs} epochs, LR {lr:.3g}; from the baseline "
            f"({task.metric_name} {start.score:.5f} on these folds); {max(box.remaining(), 0):.0f}s ({limit}), "
            f"about {unit:.0f}s per change")
    from comp.stages.training import fold_training_rows

    # the changes never change the model plugin
    defaults = plugin_defaults(cfg, ctx.competition, task, fold_training_rows(ctx))
    changes = {c.name: c for c in ordered(cfg)}

    def propose(name: str, current: dict[str, Any]):
        now = cfg.merged({**lr_setting(lr), **current}, where="a searched configuration")
        size = tuple(now.data.image_size) if now.data.image_size else image_size
        return changes[name].make(setting(now, ctx.competition, task, size, defaults))

    def fits(name: str) -> str | None:
        expected = unit * changes[name].cost
        return None if expected <= box.remaining() else \
            f"not tried: needs ~{expected:.0f}s, {max(box.remaining(), 0):.0f}s left"

    def decide(name: str, kt_trial, current: dict[str, Any]):
        change, current = changes[name], Trial.from_dict(current)
        candidate = finished_trial(kt_trial, json.loads(kt_trial.hyperparameters.values["comp_changes"]),
                                   f"{NAME}/trials/{name}")
        if candidate is None:
            why = (kt_trial.message or "").strip().splitlines()[-1:] or ["see the log"]
            return False, {"row": _row(name, change.help, None, None, None, f"failed: {why[0][:200]}")}
        # FALSE_KEEP spent over the changes in order (half on the first, a quarter on the next, ...)
        share = FALSE_KEEP / 2 ** (list(changes).index(name) + 1)
        verdict = gate(candidate, current, task.objective, false_keep=share)
        ctx.log(f"{name}: {task.metric_name} {candidate.score:.5f} vs {current.score:.5f}, gain "
                f"{verdict.gain:+.5f}, noise (SE of fold gains) {verdict.noise:.5f}, needs > {verdict.needed:.2f} SE: "
                f"{verdict.words} "
                f"({candidate.seconds:.0f}s)")
        return verdict.keep, {"row": _row(name, change.help, candidate, verdict.gain, verdict.noise, verdict.words),
                              "trial": candidate.to_dict()}

    oracles: list[SequentialOracle] = []  # the last one made ran the search (a damaged state makes another)

    def new_oracle() -> SequentialOracle:
        oracles.append(SequentialOracle(list(changes), start.to_dict(), propose=propose, fits=fits, decide=decide,
                                        objective=task.objective, seed=cfg.seed,
                                        fixed={"comp_lr": lr, "comp_epochs": epochs,
                                               "comp_folds": ",".join(map(str, folds))}))
        return oracles[-1]

    # A change tried gets its expected time past the window's end: a trial is planned to fit, never cut.
    objective = TrialObjective(ctx, lambda trial_id, values: _plan(trial_id, values, ctx.work),
                               time=lambda plan: TimeBox(box.end + unit * changes[plan.label].cost))
    try:
        search(new_oracle, objective, ctx.work / "oracle", NAME, log=ctx.log, ended=phase_ended(ctx, NAME))
    finally:
        objective.close()
    oracle = oracles[-1]
    count_remote_failures(ctx, oracle.trials.values(), lambda t: t.hyperparameters.values.get("comp_step", t.trial_id))
    rows = [_row("baseline", "the baseline's configuration", start, None, None, "reference")]
    for entry in oracle.rows:
        change = changes[entry["step"]]
        rows.append(entry["row"] if "row" in entry else _row(
            change.name, change.help, None, None, None,
            entry["skipped"] if entry["applies"] else f"not applicable: {entry['skipped']}"))
    current, kept = Trial.from_dict(oracle.current), oracle.kept
    table = pd.DataFrame(rows)
    write_csv(ctx.work / TABLE, table)
    ctx.log("tried one at a time:\n" + _markdown(table))
    write_best(ctx, lr, current, f"the baseline's configuration with the changes kept ({', '.join(kept) or 'none'});")
    # trials cover some folds; stage tune trains the result on every fold
    # Kept changes were chosen on these folds: a later stage trained with them is honest only on the others.
    return search_record(ctx, current, kept=kept, best=current.to_dict(), lr=lr, epochs=epochs, table=rows,
                         selected_on=folds if kept else [])


def _lr(ctx: StageContext) -> float:
    """The baseline's LR for a Keras model; 0 for an estimator (it has no LR of ours)."""
    from comp.stages.training import model_name, resolve_lr
    from comp.training.model import is_estimator

    return resolve_lr(ctx)[0] if not is_estimator(model_name(ctx.cfg, ctx.competition, ctx.task)) else 0.0


def _plan(trial_id: str, values: dict[str, Any], work):
    """A change's trial, from its values alone (what a worker knows)."""
    import json

    from comp.stages.trials import TrialPlan

    name = values["comp_step"]
    return TrialPlan(json.loads(values["comp_changes"]), work / "trials" / name, int(values["comp_epochs"]),
                     float(values["comp_lr"]), [int(k) for k in str(values["comp_folds"]).split(",")],
                     keep_weights=True, label=name)  # tune may reuse these folds


def work(cfg, competition, task, rundir) -> None:
    """A keras-tuner worker: run the changes the chief's oracle hands out, one at a time."""
    from comp.stages.trials import TrialObjective, serve_worker, worker_context

    ctx = worker_context(NAME, cfg, competition, task, rundir, inputs(cfg, set()))  # trials only: no lock held
    serve_worker(ctx, TrialObjective(ctx, lambda trial_id, values: _plan(trial_id, values, ctx.work)), [NAME])


def _row(name: str, what: str, trial, gain, noise, verdict: str) -> dict[str, Any]:
    nan = math.nan
    return {
        "change": name,
        "what": what,
        "oof": trial.score if trial else nan,
        "fold_std": float(np.std(trial.fold_scores)) if trial else nan,
        "gain": nan if gain is None else gain,
        "noise": nan if noise is None else noise,
        "verdict": verdict,
        "seconds": trial.seconds if trial else nan,
    }


def _markdown(table: pd.DataFrame) -> str:
    """The table as aligned text for the log (pandas' to_markdown needs tabulate)."""
    shown = table.copy()
    for col in ("oof", "fold_std", "gain", "noise"):
        shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.5f}")
    shown["seconds"] = shown["seconds"].map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
    return shown.drop(columns=["what"]).to_string(index=False)


def _report_table(run) -> str:
    from comp.html import missing, table

    path = run.folder(NAME) / TABLE
    return table(pd.read_csv(path)) if run.record(NAME) and path.is_file() else missing(NAME)


REPORT = {"regularize": _report_table}
