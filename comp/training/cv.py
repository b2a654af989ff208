"""K-fold training from plain inputs: OOF predictions, fold models and scores, resumable per fold.

``cross_validate`` knows no stage, run directory or config file: a stage resolves the
inputs, targets, folds and specs and calls it with an output folder, which ends up holding
one ``fold_k/`` per fold (the fold model, its validation predictions, history and
diagnostics) plus ``cv.json``, a summary of the scores. Folds finished by an interrupted earlier
call (``fold_k/done.json``) are reused.
"""
from __future__ import annotations

import dataclasses

import gc
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from comp.clock import UNLIMITED, TimeBox
from comp.errors import CompError
from comp.failures import FAILURES_LOG
from comp.data.inputs import Inputs
from comp.progress import resident_mb
from comp.files import read_json, write_json, write_npy
from comp.significance import standard_error
from comp.training.spec import ModelSpec, TrainSpec

SUMMARY_FILE = "cv.json"


def mean_fold_seconds(out_dir: Path) -> float:
    """Mean training seconds of the folds recorded in ``out_dir``'s summary; nan where unknown."""
    path = Path(out_dir) / SUMMARY_FILE
    folds = read_json(path).get("folds", []) if path.is_file() else []
    seconds = [f["seconds"] for f in folds if isinstance(f.get("seconds"), (int, float))]
    return float(np.mean(seconds)) if seconds else math.nan

EpochHookFactory = Callable[[int, int], Callable[[int, dict], None]]  # (fold, folds) -> hook(epoch, logs)


@dataclass(frozen=True)
class FoldFloor:
    """Per fold, the score below which the folds still to train are not worth training (a
    search's trial that is going badly); plain data, so a trial's child process gets it too."""

    scores: dict[int, float]
    higher_is_better: bool = True

    def below(self, fold: int, score: float) -> bool:
        floor = self.scores.get(fold)
        if floor is None or not math.isfinite(score):
            return floor is not None  # a score that is not a number is below any floor
        return score < floor if self.higher_is_better else score > floor


@dataclass
class CVResult:
    oof: np.ndarray  # the task's predictions for every train row
    score: float  # the competition metric on OOF rows (decoding parameters cross-fitted)
    scores: dict[str, float]  # the competition metric and the task's report metrics
    decoding: dict  # e.g. per-label thresholds, fit on all OOF rows, for the test set
    folds: list[dict] = field(default_factory=list)  # per fold: score, epochs, seconds, lr, ...
    hp: dict[str, Any] = field(default_factory=dict)
    scored: np.ndarray | None = None  # the rows with an OOF prediction (those of the folds trained)
    gave_up: bool = False  # a fold fell below its ``FoldFloor``: the folds after it were not trained
    failed: dict[int, str] = field(default_factory=dict)  # fold -> why its model raised (``keep_going``)

    @property
    def stopped_by_budget(self) -> bool:
        return any(f.get("stopped_by_budget") for f in self.folds)


HISTORY = -2  # a forward-chained split's rows before its first validation window: trained on, never scored
# The rows of a fold whose model failed (``without_folds``): trained on, never scored. In a
# forward-chained split ``UNSCORED - i`` marks rows that only folds i and later may learn from.
UNSCORED = -3


def rows_a_fold(fold_of: np.ndarray) -> int:
    """How many rows a fold's model learns from (``fit_rows``), on average over the folds of
    the split ``fold_of``: one number for every fold of a run, which a plugin's size-dependent
    defaults read (``InputSpec.rows``), so that uneven or forward-chained folds do not train
    two settings. Give it the split as stage split wrote it: after ``without_folds`` the mean
    runs over fewer folds."""
    folds = int(fold_of.max()) + 1 if len(fold_of) else 0
    return int(round(np.mean([len(fit_rows(fold_of, k)) for k in range(folds)]))) if folds > 0 else 0


def fit_rows(fold_of: np.ndarray, k: int) -> np.ndarray:
    """The rows fold ``k``'s model learns from: every other fold's (-1: a row in no fold), or,
    in a forward-chained split (one holding ``HISTORY`` rows), the history and the folds
    before ``k``, so a model never learns from rows later than the ones it is scored on.
    Rows of a fold taken out (``UNSCORED``) are learnt from as the fold's own were."""
    left_out = (fold_of <= UNSCORED) & (UNSCORED - fold_of <= k)
    if (fold_of == HISTORY).any():
        return np.flatnonzero((fold_of == HISTORY) | ((fold_of >= 0) & (fold_of < k)) | left_out)
    return np.flatnonzero(((fold_of >= 0) & (fold_of != k)) | left_out)


def without_folds(fold_of: np.ndarray, failed: list[int]) -> np.ndarray:
    """``fold_of`` with the folds ``failed`` taken out (their model failed): their rows still
    learnt from but never scored (``UNSCORED``), the other folds numbered 0, 1, ... in order,
    so that every fold left has a model and later code needs no gaps."""
    out = fold_of.copy()
    kept = [k for k in range(int(fold_of.max()) + 1) if k not in set(failed)]
    forward = bool((fold_of == HISTORY).any())
    for k in failed:  # in a forward split, learnt from by the folds after it only
        out[fold_of == k] = UNSCORED - (sum(j < k for j in kept) if forward else 0)
    for i, k in enumerate(kept):
        out[fold_of == k] = i
    return out


def cross_validate(inputs: Inputs, y: np.ndarray, fold_of: np.ndarray, task: Any, model: ModelSpec,
                   train: TrainSpec, out_dir: Path, *, seed: int, time: TimeBox = UNLIMITED,
                   log: Callable[[str], None] = print, epoch_hooks: EpochHookFactory | None = None,
                   title: str = "", only: list[int] | None = None, predict_batch_size: int = 256,
                   floor: FoldFloor | None = None, keep_going: bool = False,
                   spec_rows: int | None = None) -> CVResult:
    """Train ``model`` on every fold of ``fold_of`` (-1: a row in no fold) into ``out_dir``,
    or on the folds listed in ``only`` (each still trained on its ``fit_rows``),
    scoring the rows of the folds trained. A fold whose score falls below its ``floor``
    ends the training there (``gave_up``): only the folds trained so far are scored. A fold
    whose model raises stops the call with ``FoldFailed``; with ``keep_going`` it is left out
    (its traceback in ``out_dir``'s failures.log) while two folds can still have a model, and
    the result then holds no score, only ``failed`` and the other folds' ``folds``: the caller
    takes the failed folds out (``without_folds``) and calls again, the others read back.

    Each fold gets an equal share of what is left of ``time`` (on ``comp.clock``) when it
    starts. A hard box's end stops a network inside its epoch; one that has not finished an
    epoch raises ``comp.training.trainer.OutOfTime`` (a search's trial that cannot be scored).
    ``spec_rows``: the run's rows a fold (``rows_a_fold`` of the split as it was written, which
    ``fold_of`` may no longer be), what every fold's model is built for; None: ``fold_of``'s.
    """
    from comp.training.model import is_estimator
    from comp.training.trainer import OutOfTime

    out_dir = Path(out_dir)
    n_folds = int(fold_of.max()) + 1
    spec_rows = rows_a_fold(fold_of) if spec_rows is None else spec_rows
    trained = list(range(n_folds)) if only is None else sorted(only)
    oof: np.ndarray | None = None
    infos: list[dict] = []
    failed: dict[int, str] = {}
    estimator = is_estimator(model.name)
    if not estimator:
        train = _fit_to_memory(inputs, fit_rows(fold_of, trained[0]), task, model, train, log)
    for i, k in enumerate(trained):
        fold_dir = out_dir / f"fold_{k}"
        val_rows = np.flatnonzero(fold_of == k)
        done = fold_dir / "done.json"
        finished = _finished_fold(fold_dir, log) if done.is_file() else None
        if finished:
            info, pred = finished
            log(f"fold {k + 1}/{n_folds}: finished earlier, {task.metric_name}={info['score']:.4f}")
        else:
            fold_time = time.split(len(trained) - i)
            fold = _train_estimator_fold if estimator else _train_keras_fold
            try:
                info, pred = fold(inputs, y, fit_rows(fold_of, k), val_rows, task, model, train, fold_dir, seed=seed * 100 + k,
                                  spec_rows=spec_rows,
                                  deadline=fold_time.end, hard_deadline=time.hard_end, log=log,
                                  label=f"fold {k + 1}/{n_folds}",
                                  hook=epoch_hooks(k, n_folds) if epoch_hooks else None,
                                  title=f"{title} fold {k + 1}/{n_folds}", predict_batch_size=predict_batch_size)
            except (CompError, OutOfTime, OSError):
                raise  # the user's error, the end of the time, a full disk: each has its own handling
            except Exception as exc:
                error = _fold_failed(exc, model.name, k, n_folds, out_dir)
                failed[k] = error.reason
                if not keep_going or len(trained) - len(failed) < 2:  # one fold is no cross-validation
                    raise error from exc
                log(f"fold {k + 1}/{n_folds} failed: {error.reason} (left out; traceback in "
                    f"{out_dir / FAILURES_LOG})")
                gc.collect()  # what the failed fold held (its memory may be why it failed)
                release_free_memory()
                continue
            gc.collect()
            release_free_memory()
            # Memory after the fold's models are freed; a growth across folds is a leak.
            info["rss_mb_after"] = resident_mb()
            write_json(done, info)  # last: it marks the fold finished for a resumed run
        if oof is None:
            oof = np.zeros((len(y), *pred.shape[1:]), dtype=np.float32)
        oof[val_rows] = pred
        infos.append(info)
        if floor is not None and i < len(trained) - 1 and floor.below(k, info["score"]):
            log(f"fold {k + 1}/{n_folds}: {task.metric_name}={info['score']:.4f}, past its floor "
                f"{floor.scores[k]:.4f}: the other {len(trained) - i - 1} fold(s) are not trained")
            trained, gave_up = trained[:i + 1], True
            break
    else:
        gave_up = False
    if failed:  # the caller takes the failed folds out and calls again: the others are then read back
        return CVResult(np.zeros(0), math.nan, {}, {}, infos, infos[0].get("hp", {}), None, gave_up, failed)

    # Rows in no fold (e.g. skipped undecodable images) have no OOF prediction: never scored.
    scored = np.isin(fold_of, trained)
    decoding, score = task.fit_decoding(y[scored], oof[scored], fold_of[scored])
    scores = task.honest_scores(y[scored], oof[scored], fold_of[scored])  # thresholds cross-fitted, like score
    scores[task.metric_name] = score
    hp = infos[0].get("hp", {})
    write_json(out_dir / SUMMARY_FILE, {"score": score, "scores": scores, "decoding": decoding, "folds": infos,
                                        "model": model.to_dict(), "hp": hp, "trained_folds": trained,
                                        "gave_up": gave_up})
    per_fold = ", ".join(f"{f['score']:.4f}" for f in infos)
    which = "" if only is None else f" on folds {', '.join(str(k + 1) for k in trained)} of {n_folds}"
    se = standard_error([f["score"] for f in infos])
    log(f"OOF {task.metric_name}{which} = {score:.5f} +- {se:.5f} (folds: {per_fold})")
    return CVResult(oof, score, scores, decoding, infos, hp, scored, gave_up, failed)


def _fold_failed(exc: Exception, model: str, k: int, n_folds: int, out_dir: Path):
    """A ``FoldFailed`` naming the fold and the model, its traceback in ``out_dir``'s failures.log."""
    from comp.errors import FoldFailed
    from comp.failures import one_line, record

    log = record(out_dir, f"fold {k + 1}/{n_folds}", exc)
    reason = one_line(exc)
    return FoldFailed(f"model {model} failed on fold {k + 1}/{n_folds}: {reason} (traceback in {log}); the folds "
                      f"before it are kept: fix the model plugin or choose another model=, then rerun the same command",
                      reason)


def _fit_to_memory(inputs, fit_rows, task, model: ModelSpec, train: TrainSpec, log) -> TrainSpec:
    """``train`` with the batch (and LR) a step's activations need to stay within
    ``train.max_memory``, said once; unchanged where the batch fits."""
    import keras

    from comp.training.memory import batch_for_memory, describe_cut
    from comp.training.model import build_model
    from comp.training.strategy import get_strategy

    built = build_model(inputs.spec(fit_rows), task, model.name, model.hp, model.augmentations)[0]
    replicas = get_strategy(train.strategy).num_replicas_in_sync
    batch, factor = batch_for_memory(built, train.batch_size, train.max_memory, train.lr_scaling, replicas)
    del built
    keras.backend.clear_session()
    if batch >= train.batch_size:
        return train
    lr = train.lr * factor if isinstance(train.lr, (int, float)) else train.lr
    scaled = f"; LR {train.lr:.3g} -> {lr:.3g} (train.lr_scaling={train.lr_scaling})" if lr != train.lr else ""
    log(describe_cut(batch, train.batch_size, train.max_memory) + scaled)
    return dataclasses.replace(train, batch_size=batch, lr=lr)


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS. TensorFlow frees a fold's tensors, but glibc's
    malloc keeps the pages in its arenas, so without this the resident memory of a process
    that trains many models (a search) climbs trial after trial. No library does this for us."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:  # not glibc: nothing to trim
        pass


def _finished_fold(fold_dir: Path, log) -> tuple[dict, np.ndarray] | None:
    """A fold finished by an earlier attempt, or None (after saying so) when its files are damaged."""
    import shutil

    try:
        return read_json(fold_dir / "done.json"), np.load(fold_dir / "val_pred.npy")
    except Exception as exc:  # truncated JSON or array: train the fold again
        log(f"notice: {fold_dir} is damaged ({type(exc).__name__}); the fold trains again")
        shutil.rmtree(fold_dir, ignore_errors=True)
        return None


def _train_keras_fold(inputs, y, fit_rows, val_rows, task, model: ModelSpec, train: TrainSpec, fold_dir: Path, *,
                      seed, spec_rows, deadline, hard_deadline, log, label, hook, title,
                      predict_batch_size) -> tuple[dict, np.ndarray]:
    import keras

    from comp.augmentation import split_policy
    from comp.training.averaging import save_weight_sets
    from comp.training.batchnorm import resolve_momentum, steps_per_epoch
    from comp.training.diagnostics import Diagnostics, probe_rows
    from comp.training.fit import train_fold
    from comp.training.fold_model import FoldModel, save_fold_model
    from comp.training.model import build_model

    spec = dataclasses.replace(inputs.spec(fit_rows), rows=spec_rows)
    fold_task = task.for_fold(y[fit_rows])  # the head starts at this fold's training priors, not all rows'
    hp_values: dict[str, Any] = {}

    def build():
        nonlocal hp_values
        # Called under the strategy's scope: the steps per epoch count its replicas.
        steps = steps_per_epoch(len(fit_rows), train.batch_size)
        built, hp_values = build_model(spec, fold_task, model.name, model.hp, model.augmentations,
                                       bn_momentum=resolve_momentum(train.bn_momentum, steps))
        return built

    diagnostics = None
    if train.diagnostics:
        probe = probe_rows(fit_rows, seed=seed)
        diagnostics = Diagnostics(fold_dir, task, (inputs.take(probe), y[probe]), batch_size=train.batch_size,
                                  bn_setting=train.bn_momentum, title=title, probe_every=train.probe_every)
    hooks = [diagnostics] if diagnostics else []
    if hook:
        hooks.append(keras.callbacks.LambdaCallback(on_epoch_end=hook))
    mixer = split_policy(model.augmentations, spec, task.kind)[1]
    # rows(): images kept on disk are gathered batch by batch, never copied for the fold
    result = train_fold(build, task, (inputs.rows(fit_rows), y[fit_rows]), (inputs.rows(val_rows), y[val_rows]),
                        train, seed=seed, fold_dir=fold_dir, deadline=deadline, hard_deadline=hard_deadline,
                        callbacks=hooks, mixer=mixer)
    diagnosis = diagnostics.finish(result.best_epoch) if diagnostics else []
    pred = task.predictions(FoldModel(result.model).outputs(inputs, val_rows, task, predict_batch_size))
    save_fold_model(result.model, fold_dir)
    if result.weight_sets[0]:
        save_weight_sets(fold_dir, *result.weight_sets)
    write_npy(fold_dir / "val_pred.npy", pred)
    info = {
        "score": task.score(y[val_rows], pred),
        "epochs": result.epochs_run,
        "best_epoch": result.best_epoch,
        # the published prediction's epoch, chosen without this fold's labels unless early stopping
        # chose it; the best epoch's score beyond it is what choosing on the labels would have flattered
        "epoch_used": result.chosen_epoch,
        "best_vs_used": _epoch_gap(result.history, result.best_epoch, result.chosen_epoch, task.objective),
        "stopped_by_budget": result.stopped_by_budget,
        "seconds": round(result.seconds, 2),
        "hp": hp_values,
        "lr": result.lr,  # after scaling for the replicas
        "batch_size": train.batch_size,  # per replica, after fitting train.max_memory
        "replicas": result.replicas,
        "resumed_from_epoch": result.resumed_from,
        "diagnosis": diagnosis,
        "plan": result.plan,
    }
    budget_note = ", cut short by the budget" if result.stopped_by_budget else ""
    resume_note = f", resumed after epoch {result.resumed_from}" if result.resumed_from else ""
    used = (f"epoch {result.chosen_epoch} of {result.epochs_run}, the best {result.best_epoch}"
            + (f" by {info['best_vs_used']:+.4f}" if info["best_vs_used"] else "")
            if result.chosen_epoch != result.best_epoch else f"best epoch {result.best_epoch} of {result.epochs_run}")
    log(f"{label}: {task.metric_name}={info['score']:.4f} ({used}, "
        f"{result.seconds:.0f}s, {result.replicas} replica(s){resume_note}{budget_note})")
    if result.plan.get("budgeted") and result.plan.get("epoch_seconds"):
        log(f"{label} plan: {describe_plan(result.plan)}")
    for verdict in diagnosis:  # docs/recipe.md 4; details in fold_k/diagnostics.json
        log(f"{label} diagnosis: {verdict}")
    del result
    keras.backend.clear_session()
    return info, pred


def _epoch_gap(history: dict | None, best: int, used: int, objective) -> float:
    """How much better the best epoch's validation score was than the published epoch's."""
    from comp.training.callbacks import MONITOR

    scores = (history or {}).get(MONITOR, [])
    if not (0 < best <= len(scores) and 0 < used <= len(scores)):
        return 0.0
    return float(objective.gain(scores[best - 1], scores[used - 1]))


def describe_plan(plan: dict) -> str:
    """One line: what the budget allowed and what was traded for it."""
    planned, most = plan["epochs"], plan["max_epochs"]
    traded = (f"the schedule shrunk from train.epochs={most} to fit" if planned < most
              else f"all train.epochs={most} fit")
    part = plan.get("last_steps")  # the part of a last epoch that fitted (comp.training.callbacks.BudgetPlan)
    if part and planned == 1:
        return (f"{part} steps of one epoch fit the fold's {plan['fold_seconds']:.0f}s: the schedule shrunk from "
                f"train.epochs={most} to them, decaying to their end")
    if part:
        traded += f", the last epoch {part} of its steps"
    return (f"{plan['epoch_seconds']:.2f}s per epoch, {plan['fold_seconds']:.0f}s for the fold: {planned} epochs "
            f"planned, {traded}, decaying to its end")


def _train_estimator_fold(inputs, y, fit_rows, val_rows, task, model: ModelSpec, train: TrainSpec, fold_dir: Path, *,
                          seed, spec_rows, deadline, hard_deadline, log, label, hook, title,
                          predict_batch_size) -> tuple[dict, np.ndarray]:
    # An estimator's fit cannot be stopped part-way: one that can grow in steps stops before the
    # step that would pass the fold's deadline (comp.training.bounded_fit); others run to their end.
    from comp.training.fit import fit_estimator
    from comp.training.fold_model import FoldModel, save_fold_model
    from comp.training.model import build_estimator
    from comp.threads import native_threads

    spec = dataclasses.replace(inputs.spec(fit_rows), rows=spec_rows)
    make, hp_values = build_estimator(spec, task, model.name, model.hp)
    result = fit_estimator(make, task, inputs.frame(fit_rows, spec), y[fit_rows], deadline=deadline)
    with native_threads(result.threads):
        pred = task.predictions(FoldModel(result.model, spec).outputs(inputs, val_rows, task))
    save_fold_model(result.model, fold_dir, spec)
    write_npy(fold_dir / "val_pred.npy", pred)
    info = {"score": task.score(y[val_rows], pred), "epochs": 1, "best_epoch": 1,
            "stopped_by_budget": result.stopped_by_budget,
            "seconds": round(result.seconds, 2), "threads": result.threads, "hp": hp_values, "resumed_from_epoch": 0,
            "diagnosis": []}
    cut = "".join(f", stopped by the budget at {done} of {asked} {unit}" for done, asked, unit in
                  (result.plan or {}).get("iterations", []))
    log(f"{label}: {task.metric_name}={info['score']:.4f} ({result.seconds:.1f}s{cut})")
    return info, pred
