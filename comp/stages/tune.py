"""Stage `tune`: a keras-tuner search, coarse to fine, scored by cross-validation (docs/recipe.md 6).

Starts from stage regularize's configuration. The space: the LR (log scale, a decade either
side of the baseline's) and weight decay (log), batch size, schedule, augmentation strength,
input resolution (images of 32 px and more) and the model plugin's own knobs, each with its
range (``tune.space`` replaces a range or leaves a knob out). A trial's score is the OOF
metric over ``tune.folds`` folds, each fold's score kept for the paired comparison.

1. coarse: ``tune.coarse_trials`` trials of ``tune.oracle`` over the wide ranges, training
   ``tune.coarse_epochs`` of the baseline's epochs (hyperband: its own brackets);
2. fine: ``tune.fine_trials`` Bayesian trials (random for ``tune.oracle=random``) in ranges
   narrowed around the coarse best, each training as long as the baseline.

The best fine trial replaces the starting configuration only when its gain beats the
standard error of the paired per-fold gains; then it trains on every fold (its trial folds
reused) and predict can use it. A best value at the edge of its range is reported with a
wider range to try. Killed and rerun, the search resumes (keras-tuner's oracle state; the
interrupted trial's finished folds are kept). With ``KERASTUNER_*`` set, trials spread over
keras-tuner's chief and workers (README: tuning on several machines).

Writes ``trials.csv``, ``best.yaml`` (``comp run config=runs/<run>/tune/best.yaml``) and, when
the result differs from the baseline's configuration, the fold models and OOF files.
"""
from __future__ import annotations

import dataclasses
import json
import math
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from comp import clock
from comp.budget import Share
from comp.clock import TimeBox
from comp.context import StageContext
from comp.errors import ConfigError
from comp.modalities import modality_of
from comp.files import write_csv

NAME = "tune"
HELP = "keras-tuner search (coarse, then fine) scored on tune.folds folds; trains the best on every fold"
CONFIG = ("seed", "tune", "baseline.variants", "task", "metric", "data", "train", "model", "predict.batch_size",
          "split.group_column")
TRAINS = True
# Of the training time: the searches get the rest (with the final training on every fold).
TIME = Share(training=0.35)
OPTIONAL = True  # it only improves on what the stages before it published: a failure costs itself, not the run
TRIALS = "trials.csv"
STRENGTH = "augmentation_strength"  # a searched factor on every augmentation strength of the policy
PHASES = ("coarse", "fine")
FIXED = ("comp_phase", "comp_epochs", "comp_base", "comp_lr", "comp_folds")  # what a worker needs per trial


def least_seconds(cfg, fold_seconds: float, epochs: int, folds: int) -> float | None:
    """The run plan's question: the least time worth starting this stage with (one coarse
    trial, one fine trial, then training the result on the other folds: only a fine trial
    can replace the start); None when it has no fine trial to run."""
    from comp.stages.trials import trial_folds

    if not cfg.tune.fine_trials:
        return None
    searched = len(trial_folds(cfg.tune.folds, folds))
    coarse = max(1, round(epochs * cfg.tune.coarse_epochs)) / max(epochs, 1) if cfg.tune.coarse_trials else 0.0
    return fold_seconds * (searched * coarse + folds)


def inputs(cfg, available, training=()) -> dict[str, str]:
    return {"split": "split", "baseline": "baseline", "regularize": "regularize"}


def validate(cfg, competition, task) -> None:
    from comp.config import SCHEMA
    from comp.stages.training import validate_model

    validate_model(cfg, competition, task)
    image_size = tuple(cfg.data.image_size) if cfg.data.image_size else (32, 32)
    try:
        knobs = space(cfg, competition, task, 1e-3, image_size)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    # A range for a config key holds values that key takes (tune.space={train.batch_size: [0]}
    # was refused only when a trial ran, after every training stage).
    for knob in knobs:
        if knob.key in cfg.tune.space and knob.key in SCHEMA:
            for value in knob.choices or (knob.low, knob.high):
                if knob.key == "data.image_size":  # "HxW", as the search writes it
                    value = _size(value)
                SCHEMA[knob.key].coerce(knob.key, value, f"tune.space={{{knob.key}: {cfg.tune.space[knob.key]}}}")


def space(cfg, competition, task, lr: float, image_size: tuple[int, int] | None, rows: int = 0):
    """The knobs searched around ``cfg`` (``tune.space`` applied); ValueError for a bad tune.space.
    ``rows``: the run's rows a fold (``fold_training_rows``; 0 before the split is known)."""
    from comp.stages.training import augmentations, model_name
    from comp.training.model import is_estimator, plugin_space
    from comp.tuning.space import Knob, apply_ranges, knobs_from_hp

    name = model_name(cfg, competition, task)
    knobs: list[Knob] = []
    if not is_estimator(name):
        t = cfg.train
        knobs.append(Knob("train.lr", lr / 10, lr * 10, log=True, default=lr))
        if t.optimizer != "adam":
            knobs.append(Knob("train.weight_decay", 1e-4, 0.1, log=True, default=t.weight_decay))
        knobs.append(Knob("train.batch_size", choices=tuple(sorted({max(8, t.batch_size // 2), t.batch_size,
                                                                   t.batch_size * 2})), default=t.batch_size))
        knobs.append(Knob("train.schedule", choices=tuple(dict.fromkeys((t.schedule, "cosine", "onecycle"))),
                          default=t.schedule))
        if _strengths(augmentations(cfg, competition, task), competition.modality, task.kind):
            knobs.append(Knob(STRENGTH, 0.5, 2.0, log=True, default=1.0))
        knobs += modality_of(competition).search_knobs(image_size)
    # The plugin's knobs are searched around the configured values (model.hp, or a change kept
    # by regularize); tune.space={model.hp.NAME: []} keeps one as configured.
    configured = {f"model.hp.{k}": v for k, v in dict(cfg.model.hp).items()}
    own = plugin_space(name, competition.modality, task, rows)
    knobs += [dataclasses.replace(k, default=configured[k.key]) if k.key in configured else k
              for k in knobs_from_hp(own, "model.hp.")]
    return apply_ranges(knobs, dict(cfg.tune.space))


def _strengths(policy, modality: str, kind: str) -> list[tuple[str, float, tuple[float, float]]]:
    """(name, strength, range) of every per-example augmentation of the policy that has a strength."""
    from comp.augmentation import parse_entry, resolve

    found = []
    for entry in policy:
        aug, strength = resolve(entry, modality, kind)
        if aug.strength is not None and not aug.batch:
            found.append((parse_entry(entry)[0], aug.strength if strength is None else strength, aug.strength_range))
    return found


def to_changes(values: dict[str, Any], cfg, competition, task) -> dict[str, Any]:
    """A trial's values as dotted config changes over ``cfg`` (the starting configuration)."""
    from comp.stages.training import augmentations

    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key.startswith("tuner/") or key in FIXED:
            continue
        if key == STRENGTH:
            policy = augmentations(cfg, competition, task)
            scaled = {name: min(max(s * value, lo), hi)
                      for name, s, (lo, hi) in _strengths(policy, competition.modality, task.kind)}
            from comp.augmentation import parse_entry

            changes["train.augmentations"] = [
                f"{parse_entry(e)[0]}:{scaled[parse_entry(e)[0]]:.4g}" if parse_entry(e)[0] in scaled else e
                for e in policy]
        elif key == "data.image_size":
            changes[key] = _size(value)
        else:
            changes[key] = value.item() if hasattr(value, "item") else value
    return changes


def _size(value: Any) -> Any:
    """An image size knob's "HxW" as the config's [height, width] (other values as they are,
    for the config's own check to name)."""
    parts = str(value).split("x")
    return [int(v) for v in parts] if len(parts) == 2 and all(v.strip().isdigit() for v in parts) else value


def _plan(ctx: StageContext, trial_id: str, values: dict[str, Any]):
    """A trial from its values alone (what a worker knows): the starting configuration (its
    changes, LR and folds are fixed values of every trial) with the trial's knob values."""
    from comp.stages.trials import TrialPlan, lr_setting

    phase, lr = values["comp_phase"], float(values["comp_lr"])
    base = json.loads(values["comp_base"])
    start_cfg = ctx.cfg.merged({**lr_setting(lr), **base}, where="a searched configuration")
    shown = ", ".join(f"{k.split('.')[-1]} {_short(v)}" for k, v in values.items()
                      if not k.startswith("tuner/") and k not in FIXED)
    return TrialPlan({**base, **to_changes(values, start_cfg, ctx.competition, ctx.task)},
                     ctx.work / "trials" / phase / trial_id, int(values.get("tuner/epochs") or values["comp_epochs"]),
                     lr, [int(k) for k in str(values["comp_folds"]).split(",")],
                     keep_weights=phase == "fine",  # fine trials' folds may be reused
                     label=f"{phase} trial {trial_id}", group=phase, announce=shown, give_up=True)


def _objective(ctx: StageContext, hard_end: float):
    """The trials' objective; a trial must not outlive the search (``hard_end``)."""
    from comp.stages.trials import TrialObjective

    return TrialObjective(ctx, lambda trial_id, values: _plan(ctx, trial_id, values),
                          time=lambda plan: TimeBox(hard_end, hard=True))


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def run(ctx: StageContext) -> dict[str, Any]:
    from comp.stages.training import fold_training_rows
    from comp.stages.trials import (base_epochs, baseline_fold_seconds, forward_in_time, lr_setting, search_window,
                                    trial_folds)

    cfg, task, comp = ctx.cfg, ctx.task, ctx.competition
    baseline = ctx.rundir.result(ctx.upstream["baseline"])
    regular = ctx.rundir.record(ctx.upstream["regularize"])
    n_folds = baseline.folds
    folds = trial_folds(cfg.tune.folds, n_folds, forward_in_time(ctx))
    lr, epochs = float(regular["lr"]), base_epochs(ctx)
    start_changes = {k: v for k, v in regular["best"]["changes"].items()}
    start_cfg = cfg.merged({**lr_setting(lr), **start_changes}, where="stage regularize's result")
    image_size = (tuple(start_cfg.data.image_size) if start_cfg.data.image_size
                  else tuple(baseline.input_shape[:2]) if baseline.input_shape else None)
    knobs = space(start_cfg, comp, task, lr, image_size, fold_training_rows(ctx))

    fold_seconds = baseline_fold_seconds(ctx)
    unit = fold_seconds * len(folds)
    box, limit = search_window(ctx, cfg.tune.time, "tune.time")
    began = clock.now()
    end = max(box.end, began)
    retrain = fold_seconds * (n_folds - len(folds))  # the final training reuses the trial folds
    search_end = max(end - retrain, began)  # a window the retraining already fills leaves the search none
    coarse_epochs = max(1, round(epochs * cfg.tune.coarse_epochs))
    coarse_cost = cfg.tune.coarse_trials * coarse_epochs / epochs
    fine_cost = cfg.tune.fine_trials
    one_trial = unit * coarse_epochs / epochs  # a coarse trial at the baseline's speed: the cheapest
    least, coarse_end, search_end = phases(began, search_end, unit, one_trial, coarse_cost, fine_cost,
                                           budgeted=ctx.time.limited, limited=box.limited)
    startable = search_end > began or not box.limited
    fit_coarse = min(cfg.tune.coarse_trials, int(max(coarse_end - began, 0) / one_trial))
    fit_fine = min(cfg.tune.fine_trials, int(max(search_end - coarse_end, 0) / unit))
    ctx.log(f"{len(knobs)} knobs ({', '.join(k.key for k in knobs)}), {len(folds)} of {n_folds} folds per trial; "
            f"{end - began:.0f}s ({limit}): coarse {coarse_end - began:.0f}s for tune.coarse_trials="
            f"{cfg.tune.coarse_trials} of {coarse_epochs} epochs ({cfg.tune.oracle}; ~{fit_coarse} fit at the "
            f"baseline's speed), fine {search_end - coarse_end:.0f}s for tune.fine_trials={cfg.tune.fine_trials} of "
            f"{epochs} epochs (~{fit_fine} fit), then ~{retrain:.0f}s to train the result on the other folds")
    if not startable and cfg.tune.coarse_trials + cfg.tune.fine_trials:
        # The oracles' deadline (below) then refuses every trial; they still run, empty, so that
        # workers of a distributed search are released phase by phase.
        what = ("one trial" if not ctx.time.limited else
                "one coarse and one fine trial" if cfg.tune.coarse_trials else "one fine trial")
        why = (f"{max(end - retrain - began, 0):.0f}s for the search cannot fit {what} (~{least:.0f}s at the "
               "baseline's speed)" if fine_cost or not ctx.time.limited else
               "tune.fine_trials=0, and under a budget only a fine trial can replace the start")
        ctx.log(f"not started: {why}; the start stands and its time goes to the next stages")
    # Trials plan their schedules to end by search_end: the time kept for the final training stays kept.
    objective = _objective(ctx, search_end)
    try:
        return _search(ctx, objective, knobs, start_cfg, start_changes, regular,
                       _Plan(folds, lr, epochs, unit, coarse_epochs, coarse_end, search_end, retrain))
    finally:
        objective.close()


def phases(began: float, search_end: float, unit: float, one_trial: float, coarse_cost: float, fine_cost: float,
           budgeted: bool, limited: bool) -> tuple[float, float, float]:
    """(the least window worth starting, when the coarse phase ends, when the search ends) for
    a search from ``began`` to ``search_end`` whose full-length trial takes ``unit`` seconds and
    coarse trial ``one_trial``; the phases share the window by their costs in full-length
    trials. Only a fine trial can replace the start, so under a budget a search that cannot
    fit one after a coarse trial does not start (it ends at ``began``: its time goes to the
    next stages), and the coarse phase ends in time for one (measured: the street demo at
    budget=15m spent 127 s on coarse trials, then no fine trial fitted what they left).
    Without a budget the trials asked for run in ``tune.time``, coarse ones alone included."""
    least = ((one_trial if coarse_cost else 0.0) + unit) if budgeted else one_trial
    if limited and (search_end - began < least or (budgeted and not fine_cost)):
        return least, began, began  # the oracles' deadlines then refuse every trial
    coarse_end = began + (search_end - began) * coarse_cost / max(coarse_cost + fine_cost, 1e-9)
    if limited and fine_cost:
        coarse_end = max(min(coarse_end, search_end - unit), began)
    return least, coarse_end, search_end


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What ``run`` worked out for the search: folds, LR, lengths and when each phase ends."""

    folds: list[int]
    lr: float
    epochs: int  # a fine trial's (the baseline's)
    unit: float  # seconds of one full-length trial at the baseline's speed
    coarse_epochs: int
    coarse_end: float  # comp.clock times
    search_end: float
    retrain: float  # seconds the final training on the other folds needs at the baseline's speed


def _search(ctx, objective, knobs, start_cfg, start_changes, regular, plan: _Plan) -> dict[str, Any]:
    from comp.stages.trials import (Trial, count_remote_failures, gate, honest_record, phase_ended, search_record,
                                     write_best)
    from comp.tuning.search import make_oracle, search

    cfg, task, comp = ctx.cfg, ctx.task, ctx.competition
    for phase in PHASES:  # an earlier search's: a worker starting with this one must not take them as this one's
        phase_ended(ctx, phase).unlink(missing_ok=True)
    folds, lr, epochs, unit = plan.folds, plan.lr, plan.epochs, plan.unit
    coarse_epochs, coarse_end, search_end = plan.coarse_epochs, plan.coarse_end, plan.search_end
    fixed = {"comp_base": json.dumps(start_changes, sort_keys=True), "comp_lr": lr,
             "comp_folds": ",".join(map(str, folds))}
    direction = task.objective
    results: dict[str, list[Trial]] = {}
    best_values = {k.key: k.default for k in knobs}
    phase_knobs = knobs
    for i, phase in enumerate(PHASES):
        phase_epochs = coarse_epochs if phase == "coarse" else epochs
        phase_end = coarse_end if phase == "coarse" else search_end
        kind = cfg.tune.oracle if phase == "coarse" else ("random" if cfg.tune.oracle == "random" else "bayesian")
        n_trials = cfg.tune.coarse_trials if phase == "coarse" else cfg.tune.fine_trials
        expected = unit * phase_epochs / epochs
        oracle = partial(make_oracle, kind, phase_knobs, {**fixed, "comp_phase": phase, "comp_epochs": phase_epochs},
                         objective=task.objective, max_trials=n_trials, max_epochs=phase_epochs
                         if kind != "hyperband" else epochs, seed=cfg.seed + i,
                         deadline=lambda e=phase_end, x=expected, p=phase:
                         clock.now() + objective.expected(p, x) > e,
                         # the start at the coarse length: the fine ranges narrow around it unless
                         # a coarse trial beats it (measured: digit-value at budget=15m narrowed
                         # around the best of two wide random trials, both far worse than the start)
                         start_first=phase == "coarse")
        trials = search(oracle, objective, ctx.work / "oracle", phase, phase=i, log=ctx.log,
                        ended=phase_ended(ctx, phase))
        count_remote_failures(ctx, trials, lambda t, p=phase: f"{p} trial {t.trial_id}")
        results[phase] = [_trial(t, to_changes(t.hyperparameters.values, start_cfg, comp, task), start_changes)
                          for t in trials]
        done = [t for t in results[phase] if t.score is not None and not t.gave_up]
        if phase == "coarse" and done:
            best = direction.best(done, key=lambda t: t.score)
            best_values = {**best_values, **{k.key: best.extra["values"][k.key] for k in knobs
                                             if k.key in best.extra["values"]}}
            phase_knobs = [k.narrowed(best_values[k.key]) if best_values.get(k.key) is not None else k
                           for k in knobs]

    # The starting configuration on the same folds, for the paired comparison.
    start = _start_trial(ctx, regular, start_changes, folds, epochs, search_end, lr)
    fine = [t for t in results["fine"] if t.score is not None and t.fold_scores and not t.gave_up]
    chosen, verdict = start, "no fine trial finished: the starting configuration stands"
    if fine:
        best = direction.best(fine, key=lambda t: t.score)
        gained = gate(best, start, direction, comparisons=len(fine))
        if gained.keep:
            chosen, verdict = best, (f"fine trial {best.extra['id']} beats the start by {gained.gain:+.5f} "
                                     f"(noise {gained.noise:.5f}, > {gained.needed:.2f} SE needed over {len(fine)} trial(s))")
        else:
            verdict = (f"best fine trial {best.extra['id']} ({best.score:.5f}) does not beat the start "
                       f"({start.score:.5f}) beyond noise ({gained.gain:+.5f} vs {gained.needed:.2f} x SE {gained.noise:.5f}): the start "
                       "stands")
    ctx.log(verdict)
    tuned = chosen.extra.get("values", {}) if chosen is not start else {}
    edges = [s for k in knobs if k.key in tuned and (s := k.edge(tuned[k.key]))]
    for sentence in edges:
        ctx.log(f"edge of range: {sentence}")
    table = _table(results, start)
    write_csv(ctx.work / TRIALS, table)
    final = dict(chosen.changes)
    write_best(ctx, lr, chosen, f"{verdict}.")
    extra = {"start": start.to_dict(), "chosen": chosen.to_dict(), "verdict": verdict, "edges": edges,
             "trials": len(table) - 1, "knobs": [dataclasses.asdict(k) for k in knobs]}
    if not final:
        ctx.log("the result is the baseline's configuration: its fold models stand (predict uses the baseline)")
        return search_record(ctx, start, **extra)
    left = ctx.time.remaining()
    if left < 0.5 * plan.retrain:  # folds squeezed into seconds would be published as junk fold models
        ctx.log(f"no time left to train the result on the other folds (needs ~{plan.retrain:.0f}s, {left:.0f}s left "
                "of the budget): its configuration is in best.yaml, predict uses the earlier stages")
        return search_record(ctx, chosen, **extra, selected_on=chosen.folds)  # scored where it was chosen
    # The configuration was chosen on the trial folds (and regularize's, for the changes it
    # kept): those folds flatter it, so the published score comes from the others.
    selected_on = sorted(set(chosen.folds) | set(regular.get("selected_on", [])))
    return {**honest_record(ctx, _train_every_fold(ctx, final, chosen, epochs, lr), selected_on), **extra}


def _trial(kt_trial, changes: dict[str, Any], start_changes: dict[str, Any]):
    from comp.stages.trials import Trial
    from comp.tuning.search import trial_score

    values = dict(kt_trial.hyperparameters.values)
    score = trial_score(kt_trial)
    metrics = kt_trial.metrics
    folds = sorted(int(n[5:]) for n in metrics.metrics if n.startswith("fold_")) if score is not None else []
    fold_scores = [float(metrics.get_last_value(f"fold_{k}")) for k in folds]
    def metric(name: str) -> float:
        return float(metrics.get_last_value(name)) if score is not None and metrics.exists(name) else math.nan

    seconds = metric("seconds")
    phase = values.get("comp_phase", "")
    gave_up = metric("gave_up") == 1.0
    trial = Trial({**start_changes, **changes}, score, fold_scores, folds, seconds,
                  epochs=int(values.get("tuner/epochs") or values.get("comp_epochs") or 0),
                  folder=f"{NAME}/trials/{phase}/{kt_trial.trial_id}", gave_up=gave_up)
    status = f"stopped after {len(folds)} fold(s): going badly" if gave_up else str(kt_trial.status)
    trial.extra = {"id": f"{phase}/{kt_trial.trial_id}", "status": status, "rss_mb": metric("rss_mb"),
                   "values": {k: v for k, v in values.items() if not k.startswith("tuner/") and k not in FIXED}}
    return trial


def _start_trial(ctx, regular: dict, start_changes: dict, folds: list[int], epochs: int, search_end: float,
                 lr: float):
    """The starting configuration scored on ``folds``: regularize's own trial when it matches,
    the baseline's folds when it is the baseline's configuration, else trained here."""
    from comp.stages.trials import Trial, TrialRunner, baseline_trial

    best = regular["best"]
    if best["folds"] == folds and best["epochs"] == epochs:
        return Trial.from_dict(best)
    if not start_changes:
        return baseline_trial(ctx, folds)
    runner = TrialRunner(ctx, lr, folds)
    try:
        trial = runner.run(start_changes, ctx.work / "trials" / "start", epochs, TimeBox(search_end), keep_weights=True)
    finally:
        runner.close()
    trial.folder = f"{NAME}/trials/start"
    ctx.log(f"the start on these folds: {ctx.task.metric_name} {trial.score:.5f}")
    return trial


def _train_every_fold(ctx: StageContext, final: dict[str, Any], chosen, epochs: int, lr: float) -> dict:
    """The chosen configuration on every fold into the stage's folder (trial folds reused)."""
    from comp.stages.training import cross_validate_stage
    from comp.stages.trials import lr_setting, reuse_folds

    cfg = ctx.cfg.merged({**lr_setting(lr), "train.epochs": epochs, "baseline.variants": [], **final},
                         where="the tuned configuration")
    if chosen.folder and chosen.epochs == epochs:
        source = ctx.rundir.path / chosen.folder
        if chosen.folder.startswith(NAME + "/"):  # this stage's own trials are still in its work folder
            source = ctx.work / chosen.folder[len(NAME) + 1:]
        reuse_folds(source, ctx.work, chosen.folds)
    ctx.log(f"training the result on every fold: {', '.join(f'{k}={_short(v)}' for k, v in final.items())}")
    return cross_validate_stage(dataclasses.replace(ctx, cfg=cfg))


def _table(results: dict[str, list], start) -> pd.DataFrame:
    rows = [{"phase": "start", "trial": "", "oof": start.score, "fold_std": float(np.std(start.fold_scores)),
             "seconds": start.seconds, "epochs": start.epochs, "status": "reference"}]
    for phase, trials in results.items():
        for t in trials:
            rows.append({"phase": phase, "trial": t.extra["id"].split("/")[-1],
                         "oof": t.score if t.score is not None else math.nan,
                         "fold_std": float(np.std(t.fold_scores)) if t.fold_scores else math.nan,
                         "seconds": t.seconds, "epochs": t.epochs, "status": t.extra["status"],
                         "rss_mb": t.extra["rss_mb"],
                         **{k: _short(v) for k, v in t.extra["values"].items()}})
    return pd.DataFrame(rows)


def work(cfg, competition, task, rundir) -> None:
    """A keras-tuner worker: run the trials the chief's oracle hands out, phase after phase,
    into a scratch folder of the run directory (the chief keeps every result)."""
    from comp.stages.trials import serve_worker, worker_context

    ctx = worker_context(NAME, cfg, competition, task, rundir, inputs(cfg, set()))  # trials only: no lock held
    serve_worker(ctx, _objective(ctx, math.inf), list(PHASES))


def _report_trials(run) -> str:
    from comp.html import missing, note, table

    path = run.folder(NAME) / TRIALS
    if not run.record(NAME) or not path.is_file():
        return missing(NAME)
    frame = pd.read_csv(path)
    return table(frame) if len(frame) > 1 else table(frame) + note("no trial ran (tune.time or the budget)")


REPORT = {"tune": _report_trials}
