"""The search core that regularize and tune share.

A trial is a configuration (the run's config with a few dotted changes) cross-validated on some
folds (``TrialRunner``, in a child process for Keras models); keras-tuner proposes trials (an
oracle: ``comp.tuning``) and runs them through ``TrialObjective``, which reads everything a
trial needs from its values, so a keras-tuner worker on another machine can run it too
(``serve_worker``). A result is compared fold by fold with another trained on the same folds
(``gate``: a paired t-test at a stated false-keep rate, ``comp.significance``). Each
search works in a window (``search_window``: its share of a budget, or a multiple of the
baseline's training time) and ends by writing ``best.yaml`` (``write_best``) and its record
(``search_record``)."""
from __future__ import annotations

import math
import shutil
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from comp import artifacts, clock
from comp.clock import UNLIMITED, TimeBox
from comp.context import StageContext
from comp.files import write_text
from comp.objective import Objective
from comp.significance import FALSE_KEEP, Verdict, search_verdict

def lr_setting(lr: float) -> dict[str, float]:
    """``{"train.lr": lr}`` for a Keras model's LR; nothing for a model without one (lr 0)."""
    return {"train.lr": lr} if lr else {}


@dataclass
class Trial:
    """One configuration's scores on the folds it trained."""

    changes: dict[str, Any]  # dotted config keys -> values, over the baseline's config
    score: float  # the competition metric on the rows of the folds trained
    fold_scores: list[float]
    folds: list[int]
    seconds: float
    epochs: int = 0
    folder: str = ""  # where its fold models are, relative to the run directory ("": not kept)
    stopped_by_budget: bool = False
    gave_up: bool = False  # going badly: stopped after the folds in ``folds`` (FoldFloor)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Trial":
        """A trial as ``to_dict`` wrote it (a stage record's), its extra details left out."""
        return cls(**{k: data[k] for k in ("changes", "score", "fold_scores", "folds", "seconds", "epochs", "folder",
                                           "stopped_by_budget", "gave_up") if k in data})


def trial_folds(setting: int | str, n_folds: int, forward: bool = False) -> list[int]:
    """The folds a search trains: the first ``setting`` ones, or all; in a split forward in
    time (``forward``) the last ones, which learn from the most rows and score the latest."""
    count = n_folds if setting == "all" else min(int(setting), n_folds)
    return list(range(n_folds - count, n_folds)) if forward else list(range(count))


def forward_in_time(ctx: StageContext) -> bool:
    """Whether the run's folds chain forward in time (``split.time_column``)."""
    from comp.stages.training import read_folds
    from comp.training.cv import HISTORY

    return bool((read_folds(ctx) == HISTORY).any())


def gate(candidate: Trial, reference: Trial, objective: Objective, comparisons: int = 1,
         false_keep: float = FALSE_KEEP) -> Verdict:
    """The keep gate of both searches: ``candidate`` replaces ``reference`` (trained on the same
    folds with the same seeds) only when a paired t-test over the per-fold gains says so at
    ``false_keep``, over the ``comparisons`` alternatives the search compared
    (``comp.significance``)."""
    gain = objective.gain(candidate.score, reference.score)
    return search_verdict(gain, candidate.fold_scores, reference.fold_scores, objective, comparisons, false_keep)


def search_window(ctx: StageContext, factor: float, key: str) -> tuple[TimeBox, str]:
    """(the time box a search stage works in, what set it): its share of ``budget=``, or without
    one ``factor`` x the baseline's training time, at least a minute."""
    if ctx.time.limited:
        return ctx.time, f"its share of budget={ctx.cfg.budget}"
    baseline = ctx.rundir.result(ctx.upstream["baseline"])
    seconds = relative_time(factor, baseline_fold_seconds(ctx) * baseline.folds)
    return TimeBox.of(seconds), f"{key}={factor:g} x the baseline's training time, at least a minute"


BEST = "best.yaml"  # a search stage's result as a config file


def write_best(ctx: StageContext, lr: float, trial: Trial, headline: str) -> None:
    """``best.yaml``: the configuration a search stage found, as a config file
    (``comp run stage=baseline config=<file>`` trains with it), headed by what it is."""
    folds = ", ".join(str(k + 1) for k in trial.folds)
    comment = (f"stage {ctx.name}: {headline}\n{ctx.task.metric_name} {trial.score:.5f} on folds {folds}.\n"
               "Use: comp run stage=baseline config=<this file>")
    write_text(ctx.work / BEST, changes_yaml({**lr_setting(lr), **trial.changes}, comment))


def search_record(ctx: StageContext, trial: Trial, **extra: Any) -> dict[str, Any]:
    """A search stage's record: ``trial``'s score on the folds it was scored on (no fold models
    for every fold unless the stage trained them)."""
    from comp.significance import standard_error

    return {"score": trial.score, "score_se": standard_error(trial.fold_scores), "metric": ctx.task.metric_name,
            "higher_is_better": ctx.task.higher_is_better, "scored_folds": trial.folds,
            "fold_scores": trial.fold_scores, "fold_models": False, **extra}


def honest_record(ctx: StageContext, record: dict[str, Any], selected_on: list[int]) -> dict[str, Any]:
    """A stage record of fold models for every fold whose configuration was chosen on the
    ``selected_on`` folds: its score on the other folds (``score``), the one on every fold kept
    as ``score_all_rows``. When every fold took part in choosing, nothing is left to be honest
    on: the all-fold score stands, said to be optimistic."""
    from comp.significance import standard_error
    from comp.stages.training import load_targets, read_folds

    fold_of = read_folds(ctx)
    n_folds = int(fold_of.max()) + 1
    clean = [k for k in range(n_folds) if k not in selected_on]
    record = {**record, "selected_on": list(selected_on), "score_all_rows": record["score"], "honest_folds": clean}
    if not selected_on:
        return record
    if not clean:
        ctx.log(f"warning: every fold took part in choosing this configuration: its OOF {record['score']:.5f} "
                "is optimistic (use fewer search folds to keep some for an honest score)")
        return record
    y, oof = load_targets(ctx), np.load(ctx.work / artifacts.OOF_PROBS)
    rows = np.isin(fold_of, clean)
    record["score"] = float(ctx.task.fit_decoding(y[rows], oof[rows], fold_of[rows])[1])
    record["score_se"] = standard_error([record["fold_scores"][k] for k in clean])
    ctx.log(f"OOF {ctx.task.metric_name} {record['score']:.5f} +- {record['score_se']:.5f} on folds "
            f"{', '.join(str(k + 1) for k in clean)}, which chose nothing ({record['score_all_rows']:.5f} on every "
            "fold, the folds the configuration was chosen on included)")
    return record


def baseline_trial(ctx: StageContext, folds: list[int]) -> Trial:
    """The baseline's own result restricted to ``folds``: no training needed."""
    result = ctx.rundir.result(ctx.upstream["baseline"])
    folder = ctx.rundir.output(ctx.upstream["baseline"])
    from comp.stages.training import load_targets, read_folds

    fold_of = read_folds(ctx)
    y = load_targets(ctx)
    oof = np.load(folder / artifacts.OOF_PROBS)
    rows = np.isin(fold_of, folds)
    _, score = ctx.task.fit_decoding(y[rows], oof[rows], fold_of[rows])
    seconds = sum(_fold_infos(ctx)[k].get("seconds", 0.0) for k in folds)
    return Trial({}, float(score), [result.fold_scores[k] for k in folds], folds, seconds,
                 epochs=base_epochs(ctx), folder=ctx.upstream["baseline"])


def _fold_infos(ctx: StageContext) -> list[dict]:
    """The baseline's per-fold details (seconds, epochs, ...) from its CV summary."""
    from comp.files import read_json
    from comp.training.cv import SUMMARY_FILE

    return read_json(ctx.rundir.output(ctx.upstream["baseline"]) / SUMMARY_FILE)["folds"]


def baseline_fold_seconds(ctx: StageContext) -> float:
    """Mean seconds of one baseline fold: the unit the searches plan their time in."""
    return max(float(np.mean([f.get("seconds", 0.0) for f in _fold_infos(ctx)])), 0.1)


MIN_SEARCH_SECONDS = 60.0  # a baseline of seconds (gradient boosting on a table) still gets a real search


def relative_time(factor: float, baseline_seconds: float) -> float:
    """Seconds a search stage gets without a budget: ``factor`` x the baseline's training time,
    at least a minute (none when ``factor`` is 0)."""
    return 0.0 if factor <= 0 else max(factor * baseline_seconds, MIN_SEARCH_SECONDS)


def base_epochs(ctx: StageContext) -> int:
    """The epochs the baseline's schedule was planned for: every trial trains as long, so
    scores compare (a budget may have planned fewer than train.epochs)."""
    result = ctx.rundir.result(ctx.upstream["baseline"])
    planned = [p["epochs"] for p in result.extra.get("plan") or [] if p]
    return int(max(planned)) if planned else int(ctx.cfg.train.epochs)


# Keras keeps a few MB per model built for good (measured: a plain model.fit loop grows ~4 MB
# a model; keras-tuner #702/#873), so a search that trains hundreds of models in one process
# grows without bound. Keras trials therefore run in a child process, replaced after this many
# (its start, TensorFlow's import, costs ~5 s: not paid per trial).
TRIALS_PER_PROCESS = 8


class TrialRunner:
    """Cross-validates configurations (the stage's config plus changes) on ``folds``.

    Keras models train in a child process (``TRIALS_PER_PROCESS`` trials each) so that the
    searching process's memory stays flat however many trials run; call ``close()`` after."""

    def __init__(self, ctx: StageContext, lr: float, folds: list[int], isolate: bool = True):
        from comp.stages.training import fold_training_rows, read_folds

        self.ctx = ctx
        self.lr = lr
        self.folds = folds
        self.fold_of = read_folds(ctx)
        self.rows = fold_training_rows(ctx)  # what the baseline's fold models were built for
        self.isolate = isolate
        self._inputs: dict[Any, Any] = {}
        self._y = None
        self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _in_child(self, changes: dict[str, Any]) -> bool:
        import os

        from comp.stages.training import model_name
        from comp.training.model import is_estimator

        if not self.isolate or os.environ.get("TF_CONFIG"):  # multi-worker collectives live in this process
            return False
        cfg = self.config(changes)
        return not is_estimator(model_name(cfg, self.ctx.competition, self.ctx.task))

    def config(self, changes: dict[str, Any]):
        """The run's config with the baseline's LR and ``changes``; a bad value is a ConfigError."""
        return self.ctx.cfg.merged({**lr_setting(self.lr), **changes}, where="a searched configuration")

    def _data(self, cfg):
        from comp.data.loading import load_inputs

        from comp.modalities import modality_of

        key = modality_of(self.ctx.competition).data_key(cfg.reading())
        if key not in self._inputs:
            self._inputs[key] = load_inputs(self.ctx.competition, "train", cfg.reading())[0]
        if self._y is None:
            from comp.stages.training import load_targets

            self._y = load_targets(self.ctx)
        return self._inputs[key], self._y

    def run(self, changes: dict[str, Any], out: Path, epochs: int, time: TimeBox = UNLIMITED,
            folds: list[int] | None = None, keep_weights: bool = False, floor=None) -> Trial:
        """Train ``changes`` on the folds into ``out`` (resuming its finished folds) within
        ``time``. ``keep_weights``: the folds keep their epoch weights for the ensemble, as a
        full-length trial's folds may be reused by a training on every fold. A hard ``time``
        also stops an epoch part-way, and a fold that cannot finish one raises
        ``comp.training.trainer.OutOfTime`` (a search's trial past the search's end). A fold
        past ``floor`` (``comp.training.cv.FoldFloor``) ends the trial there (``gave_up``)."""
        folds = self.folds if folds is None else folds
        _claim(out, {"changes": changes, "epochs": int(epochs), "folds": list(folds), "lr": self.lr})
        if not self._in_child(changes):
            return self._run_here(changes, out, epochs, time, folds, keep_weights, floor)
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             max_tasks_per_child=TRIALS_PER_PROCESS, initializer=_die_with_parent)
        # The child gets plain seconds (its clock may be another test's fake) and builds the
        # task again (a task may hold a metric plugin's lambda, which does not pickle). It takes
        # off the wall time since submission: a new child's start (TensorFlow's import) is
        # part of the trial's time, not added after the search's end.
        ctx = replace(self.ctx, budget=None, task=None, time=UNLIMITED)
        from concurrent.futures.process import BrokenProcessPool
        from time import time as wall_now

        future = self._pool.submit(_child_trial, ctx, self.lr, folds, changes, out, epochs, time.remaining(),
                                   keep_weights, time.hard, floor, wall_now())
        try:
            return future.result()
        except BrokenProcessPool:  # the child died (e.g. out of memory): this trial fails, the next gets a new one
            self._pool = None
            raise

    def _run_here(self, changes: dict[str, Any], out: Path, epochs: int, time: TimeBox,
                  folds: list[int], keep_weights: bool, floor=None) -> Trial:
        from comp.stages.training import augmentations, model_name, train_spec
        from comp.training.cv import cross_validate
        from comp.training.spec import ModelSpec

        ctx = self.ctx
        cfg = self.config(changes)
        inputs, y = self._data(cfg)
        model = ModelSpec(model_name(cfg, ctx.competition, ctx.task), dict(cfg.model.hp),
                          augmentations(cfg, ctx.competition, ctx.task))
        lr = 0.0 if cfg.train.lr == "auto" else float(cfg.train.lr)  # "auto" only for a model without an LR
        spec = replace(train_spec(cfg, lr, ctx.task), epochs=max(int(epochs), 1))
        if not keep_weights:  # a short trial is only scored, never blended
            spec = replace(spec, snapshots=0, swa_epochs=0, keep_ema=0.0)
        began = clock.now()
        result = cross_validate(inputs, y, self.fold_of, ctx.task, model, spec, out, seed=cfg.seed, time=time,
                                log=lambda m: None, only=folds, predict_batch_size=cfg.predict.batch_size,
                                floor=floor, spec_rows=self.rows)
        ran = sorted(folds)[:len(result.folds)]  # cross_validate trains them in order
        return Trial(dict(changes), float(result.score), [float(f["score"]) for f in result.folds], ran,
                     round(clock.now() - began, 1), epochs=spec.epochs,
                     stopped_by_budget=result.stopped_by_budget, gave_up=result.gave_up)


TRIAL_OF = "trial_of.json"  # in a trial's folder: what its folds train


def _claim(out: Path, what: dict[str, Any]) -> None:
    """``out`` holds folds of ``what`` only: finished folds of another configuration there (a
    search restarted after damaged state numbers its trials anew) are removed, not resumed."""
    import json

    mark = out / TRIAL_OF
    text = json.dumps(what, sort_keys=True, default=str)
    if out.is_dir() and (not mark.is_file() or mark.read_text() != text):
        shutil.rmtree(out)
    if not mark.is_file():
        out.mkdir(parents=True, exist_ok=True)
        write_text(mark, text)


@dataclass(frozen=True)
class TrialPlan:
    """What one trial trains, read from its values alone (a worker has nothing else)."""

    changes: dict[str, Any]
    folder: Path
    epochs: int
    lr: float
    folds: list[int]
    keep_weights: bool  # a full-length trial's folds may be reused by a training on every fold
    label: str  # the trial in the log, e.g. "coarse trial 3"
    group: str = ""  # trials alike in cost (a search phase)
    announce: str | None = None  # when set, logged with the score once the trial is done
    give_up: bool = False  # stopped after a fold far below the best trial of its group there (GIVE_UP_SPREAD)


# A trial whose score on a fold is worse than the best finished trial of its group (same phase,
# same epochs) on that fold by more than this many fold-to-fold standard deviations (pooled
# over the group's finished trials) is not trained on its other folds: it cannot become the best, and a search that
# finishes it spends a bad trial's whole cost (a coarse trial scoring 0.39 against 0.92 took
# all 3 of its folds). The spread across folds is larger than the paired gains' noise, so the
# rule stops only the hopeless.
GIVE_UP_SPREAD = 3.0
# The spread is at least this fraction of the best trial's score (so a trial is stopped only
# 15% or more below it): a spread estimated from a trial or two of two or three folds can be
# near 0 (folds that happen to agree), and short coarse trials differ widely without being
# hopeless (the smoke search of 1-epoch trials stopped 5 of 8 at a 1% floor).
GIVE_UP_RELATIVE = 0.05


class TrialObjective:
    """keras-tuner's trial -> its plan (``plan(trial_id, values)``) cross-validated: the OOF score
    and each fold's score are the trial's metrics. A problem of the setup (a ``CompError``) stops
    the search; a configuration error (from this trial's values) or any other failure fails
    this trial only. ``time(plan)`` is the box a trial trains
    in (a hard one: it must not outlive its search)."""

    def __init__(self, ctx: StageContext, plan, time=lambda plan: UNLIMITED):
        self.ctx, self.plan, self.time = ctx, plan, time
        self.runner = None
        self.seconds: dict[str, list[float]] = {}  # per group: how long its trials took here
        self.best: dict[tuple[str, int], Trial] = {}  # per (group, epochs): its best finished trial here
        self.spreads: dict[tuple[str, int], list[float]] = {}  # per (group, epochs): its trials' fold variances

    def floor(self, plan: "TrialPlan"):
        """The ``FoldFloor`` a trial of ``plan`` is held to (None: it runs every fold)."""
        from comp.training.cv import FoldFloor

        best = self.best.get((plan.group, plan.epochs))
        if not plan.give_up or best is None or len(best.fold_scores) < 2:
            return None
        objective = self.ctx.task.objective
        pooled = math.sqrt(float(np.mean(self.spreads[(plan.group, plan.epochs)])))  # over the group's trials
        margin = GIVE_UP_SPREAD * max(pooled, GIVE_UP_RELATIVE * abs(float(np.mean(best.fold_scores))))
        return FoldFloor({k: s - objective.sign * margin for k, s in zip(best.folds, best.fold_scores)},
                         objective.higher_is_better)

    def expected(self, group: str, estimate: float) -> float:
        """Seconds the next trial of ``group`` should take: the estimate from the baseline's
        speed, or the mean of this group's trials so far when they ran slower (bigger models)."""
        seen = self.seconds.get(group)
        return max(estimate, sum(seen) / len(seen)) if seen else estimate

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None

    def __call__(self, trial_id: str, values: dict[str, Any]) -> dict[str, float]:
        from comp.errors import CompError, ConfigError, FoldFailed
        from comp.progress import resident_mb
        from comp.training.trainer import OutOfTime
        from comp.tuning.search import Stop

        ctx, plan = self.ctx, None
        try:
            plan = self.plan(trial_id, values)
            if self.runner is None or self.runner.lr != plan.lr:
                self.close()
                self.runner = TrialRunner(ctx, plan.lr, plan.folds)
            floor = self.floor(plan)
            trial = self.runner.run(plan.changes, plan.folder, plan.epochs, self.time(plan), folds=plan.folds,
                                    keep_weights=plan.keep_weights, floor=floor)
        except ConfigError as exc:
            # The starting configuration was checked before any work: an error naming one of
            # this trial's keys comes from its values, and this trial fails; any other is the
            # setup's, and stops the search.
            if plan is None or not any(key in str(exc) for key in plan.changes):
                raise Stop(exc) from None
            ctx.failed(plan.label, exc)
            raise
        except CompError as exc:
            if isinstance(exc, FoldFailed):  # the model raised on one of this trial's folds: this trial fails
                ctx.failed(plan.label if plan else f"trial {trial_id}", exc)
                raise
            raise Stop(exc) from None
        except OutOfTime as exc:  # not scored; the search ends (its time is up)
            ctx.log(f"{plan.label} stopped at the end of the search's time: {exc}")
            raise
        except Exception as exc:  # e.g. knob values the model cannot be built with: this trial fails
            from comp.failures import is_write_error

            if is_write_error(exc):  # a full disk fails every trial after it: the run stops with its line
                raise Stop(exc) from None
            ctx.failed(plan.label if plan else f"trial {trial_id}", exc)
            raise
        gave_up = ""
        if trial.gave_up:
            k = trial.folds[-1]
            gave_up = (f", stopped after fold {k + 1} ({len(trial.folds)} of {len(plan.folds)}): past its floor "
                       f"{floor.scores[k]:.5f}, the best trial's score there less {GIVE_UP_SPREAD:g} fold spreads")
        if plan.announce is not None:
            ctx.log(f"{plan.label} ({plan.epochs} epochs): {plan.announce} -> {ctx.task.metric_name} "
                    f"{trial.score:.5f} ({trial.seconds:.0f}s){gave_up}")
        elif gave_up:
            ctx.log(f"{plan.label}{gave_up}")
        if not trial.gave_up:
            self.seconds.setdefault(plan.group, []).append(trial.seconds)
            best = self.best.get((plan.group, plan.epochs))
            if trial.folds == plan.folds and len(trial.fold_scores) > 1 and all(map(math.isfinite, trial.fold_scores)):
                self.spreads.setdefault((plan.group, plan.epochs), []).append(float(np.var(trial.fold_scores, ddof=1)))
                if best is None or ctx.task.objective.better(trial.score, best.score):
                    self.best[(plan.group, plan.epochs)] = trial
        # Memory after the trial (its models freed): growth across trials is a leak (keras-tuner #702, #873).
        return {"score": trial.score, "seconds": trial.seconds, "rss_mb": resident_mb(), "epochs": trial.epochs,
                "stopped_by_budget": float(trial.stopped_by_budget), "gave_up": float(trial.gave_up),
                **{f"fold_{k}": s for k, s in zip(trial.folds, trial.fold_scores)}}


def finished_trial(kt_trial, changes: dict[str, Any], folder: str) -> Trial | None:
    """A finished keras-tuner trial as a ``Trial`` (None: it failed or was cut before its end)."""
    from comp.tuning.search import trial_score

    score = trial_score(kt_trial)
    metrics = kt_trial.metrics
    if score is None or (metrics.exists("gave_up") and metrics.get_last_value("gave_up")):
        return None  # failed, cut, or stopped going badly: its score is not over every fold

    def value(name: str, default: float = math.nan) -> float:
        return float(metrics.get_last_value(name)) if metrics.exists(name) else default

    folds = sorted(int(n[5:]) for n in metrics.metrics if n.startswith("fold_"))
    return Trial(dict(changes), score, [value(f"fold_{k}") for k in folds], folds, value("seconds"),
                 epochs=int(value("epochs", 0)), folder=folder, stopped_by_budget=bool(value("stopped_by_budget", 0)))


def count_remote_failures(ctx: StageContext, kt_trials, label: Callable[[Any], str]) -> None:
    """Trials that failed where this process did not see them fail (on a keras-tuner worker,
    or in an earlier attempt of a resumed search: the oracle has them as FAILED, their
    traceback as the message): recorded in this stage like its own failures, so the run's
    warning and ``strict=true`` count them. ``label(trial)`` names a trial as the objective
    logged it."""
    from keras_tuner.src.distribute import utils as dist_utils
    from keras_tuner.src.engine.trial import TrialStatus

    where = "on a keras-tuner worker" if dist_utils.has_chief_oracle() else "in an earlier attempt of this search"

    here = {f["what"] for f in ctx.failures}
    for trial in kt_trials:
        what = label(trial)
        if trial.status != TrialStatus.FAILED or what in here:
            continue
        lines = [line.strip() for line in str(trial.message or "").splitlines() if line.strip()]
        reason = lines[-1][:200] if lines else "no reason given"
        ctx.failures.append({"what": what, "reason": f"{reason} ({where})"})
        ctx.log(f"{what} failed {where}: {reason} (left out)")


def worker_context(stage: str, cfg, competition, task, rundir, upstream: dict[str, str]) -> StageContext:
    """A keras-tuner worker's context for ``stage``: its scratch folder in the chief's run
    directory (the chief publishes every result), no budget."""
    import os

    from comp.budget import Budget

    scratch = rundir.path / f".tuner-{os.environ['KERASTUNER_TUNER_ID']}"
    return StageContext(stage, cfg, competition, task, rundir, scratch, Budget(None), upstream)


def phase_ended(ctx: StageContext, phase: str) -> Path:
    """The file a distributed search's chief writes when it stops serving ``phase`` (in the
    run directory, which its workers share; ``comp.tuning.search``)."""
    return ctx.rundir.path / ".tuner-ended" / f"{ctx.name}-{phase}"


def serve_worker(ctx: StageContext, objective: TrialObjective, phases: list[str]) -> None:
    """A keras-tuner worker of a search stage: run the trials the chief's oracle hands out,
    phase after phase (the chief keeps every result)."""
    import os

    from comp.tuning.search import make_oracle, search

    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    try:
        for i, phase in enumerate(phases):
            local = partial(make_oracle, "random", [], {}, objective=ctx.task.objective, max_trials=1, max_epochs=1,
                            seed=ctx.cfg.seed, deadline=lambda: False)
            print(f"[{ctx.name}] worker {tuner_id}: {phase} trials from the chief", flush=True)
            search(local, objective, ctx.work / "oracle", phase, phase=i, log=ctx.log, ended=phase_ended(ctx, phase))
    finally:
        objective.close()  # the trial process ends with the worker


def _die_with_parent() -> None:
    """A trial process must not outlive the command that started it (killed, it would keep
    the terminal's or a caller's pipe open): Linux sends it SIGKILL when its parent dies."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG; not Linux: nothing to do
    except (OSError, AttributeError):
        pass


def _child_trial(ctx: StageContext, lr: float, folds: list[int], changes: dict[str, Any], out: Path, epochs: int,
                 seconds_left: float, keep_weights: bool, hard: bool, floor=None, submitted: float | None = None,
                 ) -> Trial:
    """One trial in a child process (see ``TRIALS_PER_PROCESS``), within ``seconds_left`` of
    ``submitted`` (the parent's wall time when it sent the trial)."""
    from time import time as wall_now

    from comp.tasks import make_task
    from comp.training.strategy import configure_devices

    configure_devices(ctx.cfg.train.logical_cpus)
    comp = ctx.competition
    ctx = replace(ctx, task=make_task(comp.task_kind, comp.task_source(), comp.metric, comp.root, []))
    runner = TrialRunner(ctx, lr, folds, isolate=False)
    # The box counts from when the parent sent the trial: the child's start (a new process, its
    # imports, the devices, the task and the folds) is the trial's time too.
    if submitted is not None:
        seconds_left -= max(wall_now() - submitted, 0.0)
    return runner.run(changes, out, epochs, TimeBox.of(seconds_left, hard), folds=folds, keep_weights=keep_weights,
                      floor=floor)


def changes_yaml(changes: dict[str, Any], comment: str) -> str:
    """``changes`` as a nested YAML config file (``comp run config=FILE`` reads it)."""
    nested: dict[str, Any] = {}
    for key, value in sorted(changes.items()):
        node = nested
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    body = yaml.safe_dump(nested, sort_keys=True) if nested else "{}\n"
    return "".join(f"# {line}\n" for line in comment.splitlines()) + body


def reuse_folds(source: Path, target: Path, folds: list[int]) -> None:
    """Copy finished fold folders (fold model, validation predictions, done.json) so that a
    training of every fold does not train these again."""
    for k in folds:
        src = source / artifacts.FOLD_DIR.format(fold=k)
        dst = target / artifacts.FOLD_DIR.format(fold=k)
        if (src / "done.json").is_file() and not (dst / "done.json").is_file():
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst)

