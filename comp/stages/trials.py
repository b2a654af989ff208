"""What the search stages (regularize, tune) share: a configuration - the run's config with a
few dotted changes - cross-validated on some folds and compared, fold by fold, with another
one trained on the same folds."""
from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from comp import artifacts
from comp.context import StageContext
from comp.files import write_text

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
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Trial":
        """A trial as ``to_dict`` wrote it (a stage record's), its extra details left out."""
        return cls(**{k: data[k] for k in ("changes", "score", "fold_scores", "folds", "seconds", "epochs", "folder",
                                           "stopped_by_budget") if k in data})


def trial_folds(setting: int | str, n_folds: int) -> list[int]:
    """The folds a search trains: the first ``setting`` ones, or all."""
    return list(range(n_folds if setting == "all" else min(int(setting), n_folds)))


def paired_gain(candidate: Trial, reference: Trial, higher_is_better: bool) -> tuple[float, float]:
    """(OOF gain of ``candidate`` over ``reference``, standard error of the per-fold gains).

    Both trained the same folds with the same seeds, so the fold-wise differences are paired:
    their standard error is the noise a gain must beat. With one fold there is no estimate
    (the error is infinite: nothing counts as an improvement)."""
    sign = 1.0 if higher_is_better else -1.0
    diffs = sign * (np.asarray(candidate.fold_scores) - np.asarray(reference.fold_scores))
    se = float(np.std(diffs, ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else math.inf
    return sign * (candidate.score - reference.score), se


def beats_noise(gain: float, noise: float) -> bool:
    """A gain counts when it is positive and larger than the noise; equal to it (two folds
    that moved by the same amount in one of them) is noise, whatever the rounding."""
    return gain > 1e-9 and gain - noise > 1e-9


def baseline_trial(ctx: StageContext, folds: list[int]) -> Trial:
    """The baseline's own result restricted to ``folds``: no training needed."""
    record = ctx.rundir.record(ctx.upstream["baseline"])
    folder = ctx.rundir.output(ctx.upstream["baseline"])
    from comp.stages.training import load_targets, read_folds

    fold_of = read_folds(ctx)
    y = load_targets(ctx)
    oof = np.load(folder / artifacts.OOF_PROBS)
    rows = np.isin(fold_of, folds)
    _, score = ctx.task.fit_decoding(y[rows], oof[rows], fold_of[rows])
    seconds = sum(_fold_infos(ctx)[k].get("seconds", 0.0) for k in folds)
    return Trial({}, float(score), [record["fold_scores"][k] for k in folds], folds, seconds,
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
    record = ctx.rundir.record(ctx.upstream["baseline"])
    planned = [p["epochs"] for p in record.get("plan") or [] if p]
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
        from comp.stages.training import read_folds

        self.ctx = ctx
        self.lr = lr
        self.folds = folds
        self.fold_of = read_folds(ctx)
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

        key = tuple(cfg.data.image_size or ()) if self.ctx.competition.modality == "image" else ()
        if key not in self._inputs:
            self._inputs[key] = load_inputs(self.ctx.competition, cfg, "train")[0]
        if self._y is None:
            from comp.stages.training import load_targets

            self._y = load_targets(self.ctx)
        return self._inputs[key], self._y

    def run(self, changes: dict[str, Any], out: Path, epochs: int, deadline: float = math.inf,
            folds: list[int] | None = None, keep_weights: bool = False, hard: bool = False) -> Trial:
        """Train ``changes`` on the folds into ``out`` (resuming its finished folds).
        ``keep_weights``: the folds keep their epoch weights for the ensemble, as a full-length
        trial's folds may be reused by a training on every fold. ``hard``: ``deadline`` also
        stops an epoch part-way, and a fold that cannot finish one raises
        ``comp.training.loop.OutOfTime`` (a search's trial past the search's end)."""
        folds = self.folds if folds is None else folds
        if not self._in_child(changes):
            return self._run_here(changes, out, epochs, deadline, folds, keep_weights, hard)
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             max_tasks_per_child=TRIALS_PER_PROCESS, initializer=_die_with_parent)
        seconds_left = deadline - time.monotonic()  # clocks need not agree across processes
        # The child gets plain seconds, not the budget's clock, and builds the task again (a
        # task may hold a metric plugin's lambda, which does not pickle).
        ctx = replace(self.ctx, budget=None, task=None)
        from concurrent.futures.process import BrokenProcessPool

        future = self._pool.submit(_child_trial, ctx, self.lr, folds, changes, out, epochs, seconds_left, keep_weights,
                                   hard)
        try:
            return future.result()
        except BrokenProcessPool:  # the child died (e.g. out of memory): this trial fails, the next gets a new one
            self._pool = None
            raise

    def _run_here(self, changes: dict[str, Any], out: Path, epochs: int, deadline: float,
                  folds: list[int], keep_weights: bool, hard: bool) -> Trial:
        from comp.stages.training import augmentations, model_name, train_spec
        from comp.training.cv import cross_validate
        from comp.training.spec import ModelSpec

        ctx = self.ctx
        cfg = self.config(changes)
        inputs, y = self._data(cfg)
        model = ModelSpec(model_name(cfg, ctx.competition, ctx.task), dict(cfg.model.hp),
                          augmentations(cfg, ctx.competition, ctx.task))
        lr = 0.0 if cfg.train.lr == "auto" else float(cfg.train.lr)  # "auto" only for a model without an LR
        spec = replace(train_spec(cfg, lr), epochs=max(int(epochs), 1))
        if not keep_weights:  # a short trial is only scored, never blended
            spec = replace(spec, snapshots=0, swa_epochs=0, keep_ema=0.0)
        began = time.monotonic()
        result = cross_validate(inputs, y, self.fold_of, ctx.task, model, spec, out, seed=cfg.seed,
                                deadline=deadline, hard_deadline=deadline if hard else math.inf,
                                log=lambda m: None, only=folds)
        return Trial(dict(changes), float(result.score), [float(f["score"]) for f in result.folds], list(folds),
                     round(time.monotonic() - began, 1), epochs=spec.epochs,
                     stopped_by_budget=result.stopped_by_budget)


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
                 seconds_left: float, keep_weights: bool, hard: bool) -> Trial:
    """One trial in a child process (see ``TRIALS_PER_PROCESS``)."""
    from comp.tasks import make_task
    from comp.training.strategy import configure_devices

    configure_devices(ctx.cfg.train.logical_cpus)
    comp = ctx.competition
    ctx = replace(ctx, task=make_task(comp.task_kind, comp.task_source(), comp.metric, comp.root, []))
    runner = TrialRunner(ctx, lr, folds, isolate=False)
    return runner.run(changes, out, epochs, deadline=time.monotonic() + seconds_left, folds=folds,
                      keep_weights=keep_weights, hard=hard)


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


def write_best(path: Path, changes: dict[str, Any], comment: str) -> None:
    write_text(path, changes_yaml(changes, comment))


def reuse_folds(source: Path, target: Path, folds: list[int]) -> None:
    """Copy finished fold folders (fold model, validation predictions, done.json) so that a
    training of every fold does not train these again."""
    for k in folds:
        src = source / artifacts.FOLD_DIR.format(fold=k)
        dst = target / artifacts.FOLD_DIR.format(fold=k)
        if (src / "done.json").is_file() and not (dst / "done.json").is_file():
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst)

