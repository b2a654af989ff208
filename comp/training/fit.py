"""Train one fold: early stopping on the competition metric, best-weights checkpoint, deadline."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np

from comp.data.pipeline import make_dataset
from comp.training.strategy import get_strategy


class DeadlineStop(keras.callbacks.Callback):
    """Stop before an epoch that would end after ``deadline`` (a time.monotonic() value)."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline
        self.stopped = False
        self._began = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._began = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if time.monotonic() + (time.monotonic() - self._began) > self.deadline:
            self.model.stop_training = True
            self.stopped = True


@dataclass
class FoldResult:
    model: keras.Model
    epochs_run: int
    best_epoch: int
    stopped_by_budget: bool
    seconds: float


def train_fold(build: Callable[[], keras.Model], task: Any, train: tuple[np.ndarray, np.ndarray],
               val: tuple[np.ndarray, np.ndarray], settings: Any, seed: int, fold_dir: Path,
               deadline: float) -> FoldResult:
    """Fit a fresh model from ``build`` on ``train``; returns it with its best weights loaded.

    ``settings`` is the ``train`` config section (epochs, batch_size, lr, patience,
    strategy, verbose).
    """
    began = time.monotonic()
    fold_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    strategy = get_strategy(settings.strategy)
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        model = build()
        model.compile(
            optimizer=keras.optimizers.Adam(settings.lr * replicas),  # linear scaling rule
            loss=task.loss(),
            metrics=task.keras_metrics(),
        )
    batch = settings.batch_size * replicas
    monitor, mode = task.monitor
    best_path = fold_dir / "best.weights.h5"
    deadline_stop = DeadlineStop(deadline)
    history = model.fit(
        make_dataset(*train, batch, shuffle=True, seed=seed),
        validation_data=make_dataset(*val, batch),
        epochs=settings.epochs,
        verbose=2 if settings.verbose else 0,
        callbacks=[
            keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=settings.patience),
            keras.callbacks.ModelCheckpoint(
                best_path, monitor=monitor, mode=mode, save_best_only=True, save_weights_only=True
            ),
            keras.callbacks.CSVLogger(str(fold_dir / "history.csv")),
            deadline_stop,
        ],
    )
    model.load_weights(best_path)
    scores = history.history[monitor]
    best = int(np.argmax(scores) if mode == "max" else np.argmin(scores))
    return FoldResult(model, len(scores), best + 1, deadline_stop.stopped, time.monotonic() - began)


def save_model(model: keras.Model, path: Path) -> None:
    """Save atomically: Keras insists on the .keras suffix, so the temp name keeps it."""
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)
