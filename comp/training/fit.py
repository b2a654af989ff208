"""Train one fold: a Keras model through the distributed loop, or a non-Keras estimator."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from comp.files import write_csv
from comp.training.feeding import rows_of
from comp.training.trainer import Trainer
from comp.training.spec import TrainSpec
from comp.training.strategy import get_strategy, scaled_lr, set_precision, worker_role

tf.get_logger().setLevel("ERROR")  # retracing notices when fold models load one by one
tf.config.experimental.enable_op_determinism()  # same seed, same result (and resumed runs equal uninterrupted ones)


@dataclass
class FoldResult:
    model: Any  # a keras.Model, or a fitted estimator
    epochs_run: int
    best_epoch: int
    stopped_by_budget: bool
    seconds: float
    resumed_from: int = 0
    lr: float = 0.0
    replicas: int = 1
    history: dict | None = None
    plan: dict | None = None
    weight_sets: tuple[dict, dict] = ({}, {})  # kept for the ensemble: (arrays by set, what each set is)
    threads: int = 0  # an estimator's native thread pools (comp.threads); 0: TensorFlow's own
    chosen_epoch: int = 0  # the epoch whose weights the model holds (1-based)


def train_fold(build: Callable[[], keras.Model], task: Any, train: tuple[Any, np.ndarray],
               val: tuple[Any, np.ndarray], spec: TrainSpec, seed: int, fold_dir: Path,
               deadline: float, callbacks: Iterable[keras.callbacks.Callback] = (),
               mixer: Callable | None = None, hard_deadline: float = math.inf) -> FoldResult:
    """Fit a fresh model from ``build`` on ``train``; returns it with the weights it publishes
    loaded (the last epoch's; the best's where early stopping runs).

    ``mixer`` is a batch-level augmentation (``comp.api.Augmentation`` with ``batch=True``).
    An interrupted earlier attempt at this fold resumes from its last finished epoch.
    """
    fold_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    set_precision(spec.mixed_precision)
    strategy = get_strategy(spec.strategy)
    replicas = strategy.num_replicas_in_sync
    fold_lr = scaled_lr(spec.lr, replicas, spec.lr_scaling)
    global_batch = spec.batch_size * replicas
    steps = math.ceil(rows_of(train[0]) / global_batch)
    trainer = Trainer(strategy, build, task, spec, fold_lr, steps, mixer=mixer)
    result = trainer.fit(
        train, val, epochs=spec.epochs, global_batch=global_batch, seed=seed,
        deadline=deadline, hard_deadline=hard_deadline, state_dir=fold_dir / "resume",
        is_chief=worker_role()[0] == 0, callbacks=callbacks)
    write_csv(fold_dir / "history.csv", pd.DataFrame(result.history).rename_axis("epoch").reset_index())
    return FoldResult(trainer.model, result.epochs_run, result.best_epoch, result.stopped_by_budget,
                      result.seconds, result.resumed_from, fold_lr, replicas, result.history, result.plan,
                      trainer.weight_sets(), chosen_epoch=result.chosen_epoch)


def fit_estimator(make: Callable[[], Any], task: Any, x: pd.DataFrame, y: np.ndarray,
                  deadline: float = math.inf) -> FoldResult:
    """Fit a non-Keras model plugin's estimator(s) on one fold, on the cores free now
    (``comp.threads``: a busy-waiting OpenMP team stalls on a shared core), within
    ``deadline`` where the estimator can be fitted in steps (``comp.training.bounded_fit``)."""
    from comp import clock
    from comp.threads import native_threads
    from comp.training.bounded_fit import BoundedFit

    began = clock.now()
    bounded = BoundedFit(deadline)
    with native_threads() as threads:
        fitted = task.fit_estimator(make, x, y, fit=bounded)
    return FoldResult(fitted, 1, 1, bool(bounded.stopped), clock.now() - began, threads=threads, chosen_epoch=1,
                      plan={"iterations": bounded.stopped} if bounded.stopped else None)
