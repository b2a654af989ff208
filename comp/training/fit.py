"""Train one fold with the distributed loop: strategy, precision, LR scaling, resume state."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from comp.rundir import write_csv
from comp.training.loop import EpochCallbacks, Trainer
from comp.training.strategy import get_strategy, scaled_lr, set_precision, worker_role

tf.get_logger().setLevel("ERROR")  # retracing notices when fold models load one by one
tf.config.experimental.enable_op_determinism()  # ARCHITECTURE promise 5: same seed, same result


@dataclass
class FoldResult:
    model: keras.Model
    epochs_run: int
    best_epoch: int
    stopped_by_budget: bool
    seconds: float
    resumed_from: int = 0
    lr: float = 0.0
    replicas: int = 1


def train_fold(build: Callable[[], keras.Model], task: Any, train: tuple[np.ndarray, np.ndarray],
               val: tuple[np.ndarray, np.ndarray], settings: Any, seed: int, fold_dir: Path,
               deadline: float, lr: float | None = None,
               callbacks: EpochCallbacks | None = None) -> FoldResult:
    """Fit a fresh model from ``build`` on ``train``; returns it with its best weights loaded.

    ``settings`` is the ``train`` config section. ``lr`` overrides ``settings.lr``, which
    may be the word ``auto`` that only the caller can resolve (see ``cv.resolve_lr``).
    An interrupted earlier attempt at this fold resumes from its last finished epoch.
    """
    lr = settings.lr if lr is None else lr
    if not isinstance(lr, (int, float)):
        raise TypeError(f"train_fold needs a numeric lr, got {lr!r}: resolve train.lr=auto first")
    fold_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    set_precision(settings.mixed_precision)
    strategy = get_strategy(settings.strategy)
    replicas = strategy.num_replicas_in_sync
    fold_lr = scaled_lr(lr, replicas, settings.lr_scaling)
    trainer = Trainer(strategy, build, task, fold_lr)
    monitor, mode = task.monitor
    result = trainer.fit(
        train, val, epochs=settings.epochs, global_batch=settings.batch_size * replicas, seed=seed,
        monitor=monitor, mode=mode, patience=settings.patience, deadline=deadline,
        state_dir=fold_dir / "resume", is_chief=worker_role()[0] == 0, callbacks=callbacks)
    write_csv(fold_dir / "history.csv", pd.DataFrame(result.history).rename_axis("epoch").reset_index())
    return FoldResult(trainer.model, result.epochs_run, result.best_epoch, result.stopped_by_budget,
                      result.seconds, result.resumed_from, fold_lr, replicas)


def predict(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Forward passes in batches; works for a model built under any strategy."""
    if os.environ.get("TF_CONFIG"):  # model.predict shares model.fit's multi-worker failure
        return np.concatenate([keras.ops.convert_to_numpy(model(x[i:i + batch_size], training=False))
                               for i in range(0, len(x), batch_size)])
    return model.predict(x, batch_size=batch_size, verbose=0)


def save_model(model: keras.Model, path: Path) -> None:
    """Save atomically: Keras insists on the .keras suffix, so the temp name keeps it."""
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)
