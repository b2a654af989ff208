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
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from comp.context import StageContext
from comp.errors import CompError, ConfigError
from comp.files import write_csv

NAME = "tune"
HELP = "keras-tuner search (coarse, then fine) scored on tune.folds folds; trains the best on every fold"
CONFIG = ("seed", "tune", "baseline", "task", "metric", "data", "train", "model", "predict.batch_size",
          "split.group_column")
TRAINS = True
TRIALS = "trials.csv"
BEST = "best.yaml"
STRENGTH = "augmentation_strength"  # a searched factor on every augmentation strength of the policy
PHASES = ("coarse", "fine")
FIXED = ("comp_phase", "comp_epochs", "comp_base", "comp_lr", "comp_folds")  # what a worker needs per trial


def inputs(cfg, available) -> dict[str, str]:
    return {"split": "split", "baseline": "baseline", "regularize": "regularize"}


def validate(cfg, competition, task) -> None:
    from comp.stages.training import validate_model

    validate_model(cfg, competition, task)
    image_size = tuple(cfg.data.image_size) if cfg.data.image_size else (32, 32)
    try:
        space(cfg, competition, task, 1e-3, image_size)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def space(cfg, competition, task, lr: float, image_size: tuple[int, int] | None):
    """The knobs searched around ``cfg`` (``tune.space`` applied); ValueError for a bad tune.space."""
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
        if competition.modality == "image" and image_size and min(image_size) >= 32:
            h, w = image_size
            knobs.append(Knob("data.image_size", choices=(f"{h}x{w}", f"{round(h * 0.75)}x{round(w * 0.75)}"),
                              default=f"{h}x{w}"))
    # The plugin's knobs are searched around the configured values (model.hp, or a change kept
    # by regularize); tune.space={model.hp.NAME: []} keeps one as configured.
    configured = {f"model.hp.{k}": v for k, v in dict(cfg.model.hp).items()}
    knobs += [dataclasses.replace(k, default=configured[k.key]) if k.key in configured else k
              for k in knobs_from_hp(plugin_space(name, competition.modality, task), "model.hp.")]
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
            changes[key] = [int(v) for v in str(value).split("x")]
        else:
            changes[key] = value.item() if hasattr(value, "item") else value
    return changes


class _Objective:
    """A trial: its values -> the OOF score on the trial folds (fold scores as extra metrics)."""

    def __init__(self, ctx: StageContext, trials_dir: Path, hard_deadline: float):
        self.ctx = ctx
        self.trials_dir = trials_dir
        self.hard_deadline = hard_deadline
        self.runner = None
        self.seconds: dict[str, list[float]] = {}  # per phase: how long its trials took here

    def expected(self, phase: str, estimate: float) -> float:
        """Seconds the next trial of ``phase`` should take: the estimate from the baseline's
        speed, or the mean of this phase's trials so far when they ran slower (bigger models)."""
        seen = self.seconds.get(phase)
        return max(estimate, sum(seen) / len(seen)) if seen else estimate

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()

    def __call__(self, trial_id: str, values: dict[str, Any]) -> dict[str, float]:
        from comp.stages.trials import TrialRunner
        from comp.training.loop import OutOfTime

        ctx = self.ctx
        phase, lr = values["comp_phase"], float(values["comp_lr"])
        folds = [int(k) for k in str(values["comp_folds"]).split(",")]
        epochs = int(values.get("tuner/epochs") or values["comp_epochs"])
        if self.runner is None or self.runner.lr != lr:
            self.close()
            self.runner = TrialRunner(ctx, lr, folds)
        base = json.loads(values["comp_base"])
        try:
            start_cfg = self.runner.config(base)
            changes = {**base, **to_changes(values, start_cfg, ctx.competition, ctx.task)}
            trial = self.runner.run(changes, self.trials_dir / phase / trial_id, epochs, deadline=self.hard_deadline,
                                    folds=folds, keep_weights=phase == "fine",  # fine trials' folds may be reused
                                    hard=True)  # a trial must not run past the search's end
        except CompError as exc:
            from comp.tuning.search import Stop

            raise Stop(exc) from None
        except OutOfTime as exc:  # not scored; the search ends (its time is up)
            ctx.log(f"{phase} trial {trial_id} stopped at the end of the search's time: {exc}")
            raise
        except Exception as exc:  # e.g. knob values the model cannot be built with: this trial fails
            ctx.log(f"{phase} trial {trial_id} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            raise
        shown = ", ".join(f"{k.split('.')[-1]} {_short(v)}" for k, v in values.items()
                          if not k.startswith("tuner/") and k not in FIXED)
        ctx.log(f"{phase} trial {trial_id} ({epochs} epochs): {shown} -> {ctx.task.metric_name} {trial.score:.5f} "
                f"({trial.seconds:.0f}s)")
        self.seconds.setdefault(phase, []).append(trial.seconds)
        from comp.progress import resident_mb

        # Memory after the trial (its models freed): growth across trials is a leak (keras-tuner #702, #873).
        return {"score": trial.score, "seconds": trial.seconds, "rss_mb": resident_mb(),
                **{f"fold_{k}": s for k, s in zip(folds, trial.fold_scores)}}


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def run(ctx: StageContext) -> dict[str, Any]:
    from comp.stages.trials import base_epochs, baseline_fold_seconds, lr_setting, relative_time, trial_folds

    cfg, task, comp = ctx.cfg, ctx.task, ctx.competition
    baseline = ctx.rundir.record(ctx.upstream["baseline"])
    regular = ctx.rundir.record(ctx.upstream["regularize"])
    n_folds = baseline["folds"]
    folds = trial_folds(cfg.tune.folds, n_folds)
    lr, epochs = float(regular["lr"]), base_epochs(ctx)
    start_changes = {k: v for k, v in regular["best"]["changes"].items()}
    start_cfg = cfg.merged({**lr_setting(lr), **start_changes}, where="stage regularize's result")
    image_size = (tuple(start_cfg.data.image_size) if start_cfg.data.image_size
                  else tuple(baseline["input_shape"][:2]) if "input_shape" in baseline else None)
    knobs = space(start_cfg, comp, task, lr, image_size)

    fold_seconds = baseline_fold_seconds(ctx)
    unit = fold_seconds * len(folds)
    began = time.monotonic()
    if ctx.budget.limited:
        end = began + max(ctx.budget.stage_deadline(NAME) - ctx.budget.clock(), 0.0)
        limit = f"its share of budget={cfg.budget}"
    else:
        end = began + relative_time(cfg.tune.time, fold_seconds * n_folds)
        limit = f"tune.time={cfg.tune.time:g} x the baseline's training time, at least a minute"
    retrain = fold_seconds * (n_folds - len(folds))  # the final training reuses the trial folds
    search_end = end - retrain
    coarse_epochs = max(1, round(epochs * cfg.tune.coarse_epochs))
    coarse_cost = cfg.tune.coarse_trials * coarse_epochs / epochs
    fine_cost = cfg.tune.fine_trials
    coarse_end = began + (search_end - began) * coarse_cost / max(coarse_cost + fine_cost, 1e-9)
    fit_coarse = min(cfg.tune.coarse_trials, int(max(coarse_end - began, 0) / (unit * coarse_epochs / epochs)))
    fit_fine = min(cfg.tune.fine_trials, int(max(search_end - coarse_end, 0) / unit))
    ctx.log(f"{len(knobs)} knobs ({', '.join(k.key for k in knobs)}), {len(folds)} of {n_folds} folds per trial; "
            f"{end - began:.0f}s ({limit}): coarse {coarse_end - began:.0f}s for tune.coarse_trials="
            f"{cfg.tune.coarse_trials} of {coarse_epochs} epochs ({cfg.tune.oracle}; ~{fit_coarse} fit at the "
            f"baseline's speed), fine {search_end - coarse_end:.0f}s for tune.fine_trials={cfg.tune.fine_trials} of "
            f"{epochs} epochs (~{fit_fine} fit), then ~{retrain:.0f}s to train the result on the other folds")
    # Trials plan their schedules to end by search_end: the time kept for the final training stays kept.
    objective = _Objective(ctx, ctx.work / "trials", hard_deadline=search_end)
    try:
        return _search(ctx, objective, knobs, start_cfg, start_changes, regular,
                       _Plan(folds, lr, epochs, unit, coarse_epochs, coarse_end, search_end, retrain))
    finally:
        objective.close()


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What ``run`` worked out for the search: folds, LR, lengths and when each phase ends."""

    folds: list[int]
    lr: float
    epochs: int  # a fine trial's (the baseline's)
    unit: float  # seconds of one full-length trial at the baseline's speed
    coarse_epochs: int
    coarse_end: float  # time.monotonic() values
    search_end: float
    retrain: float  # seconds the final training on the other folds needs at the baseline's speed


def _search(ctx, objective, knobs, start_cfg, start_changes, regular, plan: _Plan) -> dict[str, Any]:
    from comp.stages.trials import Trial, beats_noise, lr_setting, paired_gain, write_best
    from comp.tuning.search import make_oracle, search

    cfg, task, comp = ctx.cfg, ctx.task, ctx.competition
    folds, lr, epochs, unit = plan.folds, plan.lr, plan.epochs, plan.unit
    coarse_epochs, coarse_end, search_end = plan.coarse_epochs, plan.coarse_end, plan.search_end
    fixed = {"comp_base": json.dumps(start_changes, sort_keys=True), "comp_lr": lr,
             "comp_folds": ",".join(map(str, folds))}
    sign = 1 if task.higher_is_better else -1
    results: dict[str, list[Trial]] = {}
    best_values = {k.key: k.default for k in knobs}
    phase_knobs = knobs
    for i, phase in enumerate(PHASES):
        phase_epochs = coarse_epochs if phase == "coarse" else epochs
        phase_end = coarse_end if phase == "coarse" else search_end
        kind = cfg.tune.oracle if phase == "coarse" else ("random" if cfg.tune.oracle == "random" else "bayesian")
        n_trials = cfg.tune.coarse_trials if phase == "coarse" else cfg.tune.fine_trials
        expected = unit * phase_epochs / epochs
        oracle = make_oracle(kind, phase_knobs, {**fixed, "comp_phase": phase, "comp_epochs": phase_epochs},
                             higher_is_better=task.higher_is_better, max_trials=n_trials, max_epochs=phase_epochs
                             if kind != "hyperband" else epochs, seed=cfg.seed + i,
                             deadline=lambda e=phase_end, x=expected, p=phase:
                             time.monotonic() + objective.expected(p, x) > e)
        trials = search(oracle, objective, ctx.work / "oracle", phase, phase=i)
        results[phase] = [_trial(t, to_changes(t.hyperparameters.values, start_cfg, comp, task), start_changes)
                          for t in trials]
        done = [t for t in results[phase] if t.score is not None]
        if phase == "coarse" and done:
            best = max(done, key=lambda t: sign * t.score)
            best_values = {**best_values, **{k.key: best.extra["values"][k.key] for k in knobs
                                             if k.key in best.extra["values"]}}
            phase_knobs = [k.narrowed(best_values[k.key]) if best_values.get(k.key) is not None else k
                           for k in knobs]

    # The starting configuration on the same folds, for the paired comparison.
    start = _start_trial(ctx, regular, start_changes, folds, epochs, objective, lr)
    fine = [t for t in results["fine"] if t.score is not None and t.fold_scores]
    chosen, verdict = start, "no fine trial finished: the starting configuration stands"
    if fine:
        best = max(fine, key=lambda t: sign * t.score)
        gain, noise = paired_gain(best, start, task.higher_is_better)
        if beats_noise(gain, noise):
            chosen, verdict = best, f"fine trial {best.extra['id']} beats the start by {gain:+.5f} (noise {noise:.5f})"
        else:
            verdict = (f"best fine trial {best.extra['id']} ({best.score:.5f}) does not beat the start "
                       f"({start.score:.5f}) beyond noise ({gain:+.5f} vs SE {noise:.5f}): the start stands")
    ctx.log(verdict)
    tuned = chosen.extra.get("values", {}) if chosen is not start else {}
    edges = [s for k in knobs if k.key in tuned and (s := k.edge(tuned[k.key]))]
    for sentence in edges:
        ctx.log(f"edge of range: {sentence}")
    table = _table(results, start)
    write_csv(ctx.work / TRIALS, table)
    final = dict(chosen.changes)
    write_best(ctx.work / BEST, {**lr_setting(lr), **final},
               f"stage tune: {verdict}.\n{task.metric_name} {chosen.score:.5f} on folds "
               f"{', '.join(str(k + 1) for k in folds)}.\nUse: comp run stage=baseline config=<this file>")
    extra = {"start": start.to_dict(), "chosen": chosen.to_dict(), "verdict": verdict, "edges": edges,
             "trials": len(table) - 1, "knobs": [dataclasses.asdict(k) for k in knobs]}
    if not final:
        ctx.log("the result is the baseline's configuration: its fold models stand (predict uses the baseline)")
        return {"score": start.score, "metric": task.metric_name, "higher_is_better": task.higher_is_better,
                "scored_folds": folds, "fold_scores": start.fold_scores, "fold_models": False, **extra}
    left = ctx.budget.stage_deadline(NAME) - ctx.budget.clock() if ctx.budget.limited else math.inf
    if left < 0.5 * plan.retrain:  # folds squeezed into seconds would be published as junk fold models
        ctx.log(f"no time left to train the result on the other folds (needs ~{plan.retrain:.0f}s, {left:.0f}s left "
                "of the budget): its configuration is in best.yaml, predict uses the earlier stages")
        return {"score": chosen.score, "metric": task.metric_name, "higher_is_better": task.higher_is_better,
                "scored_folds": folds, "fold_scores": chosen.fold_scores, "fold_models": False, **extra}
    return {**_train_every_fold(ctx, final, chosen, epochs, lr), **extra}


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
    trial = Trial({**start_changes, **changes}, score, fold_scores, folds, seconds,
                  epochs=int(values.get("tuner/epochs") or values.get("comp_epochs") or 0),
                  folder=f"{NAME}/trials/{phase}/{kt_trial.trial_id}")
    trial.extra = {"id": f"{phase}/{kt_trial.trial_id}", "status": str(kt_trial.status), "rss_mb": metric("rss_mb"),
                   "values": {k: v for k, v in values.items() if not k.startswith("tuner/") and k not in FIXED}}
    return trial


def _start_trial(ctx, regular: dict, start_changes: dict, folds: list[int], epochs: int, objective, lr: float):
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
        trial = runner.run(start_changes, ctx.work / "trials" / "start", epochs, deadline=objective.hard_deadline,
                           keep_weights=True)
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
    import os

    from comp.budget import Budget
    from comp.tuning.search import make_oracle, search

    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    scratch = rundir.path / f".tuner-{tuner_id}"
    ctx = StageContext(NAME, cfg, competition, task, rundir, scratch, Budget(None),
                       {"split": "split", "baseline": "baseline", "regularize": "regularize"})
    objective = _Objective(ctx, scratch / "trials", hard_deadline=math.inf)
    try:
        for i, phase in enumerate(PHASES):
            local = make_oracle("random", [], {}, higher_is_better=task.higher_is_better, max_trials=1, max_epochs=1,
                                seed=cfg.seed, deadline=lambda: False)
            print(f"[tune] worker {tuner_id}: {phase} trials from the chief", flush=True)
            search(local, objective, scratch / "oracle", phase, phase=i)
    finally:
        objective.close()  # the trial process ends with the worker
