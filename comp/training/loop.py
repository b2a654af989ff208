"""One training loop for every tf.distribute strategy and every task kind, resumable after any epoch.

Why not ``model.fit``: under MultiWorkerMirroredStrategy it fails ("unsupported type ...
PerReplica", keras issue #20585), and its BackupAndRestore cannot restore early-stopping
state. This loop runs a custom step with ``strategy.run`` over a distributed dataset,
``tf.nn.compute_average_loss`` and the Keras optimizer, the same code on one CPU, one GPU,
several GPUs and several workers. Early stopping, best-weights tracking and the resume
state are kept here (written by hand because no library offers them for custom loops).

The task supplies the loss and the metric tracked on the device (``task.batch_metric``);
after each epoch the validation rows are predicted in full and scored with the
competition metric itself (``task.score``: AUC, F1, RMSE, exact match, ...), which is
what early stopping and the best weights follow (the ``val_score`` log key).

Resume is exact: each epoch shuffles with its own seed, and the state saved after every
epoch holds all model variables (weights and RNG states), the optimizer's variables, the
history, the best weights and the early-stopping counter.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from comp.rundir import atomic_path, write_text

STATE_JSON = "state.json"  # the commit point; names the arrays file of the same epoch
MONITOR = "val_score"  # the competition metric on the validation rows


@dataclass
class LoopResult:
    history: dict[str, list[float]]
    best_epoch: int  # 1-based
    epochs_run: int
    stopped_by_budget: bool
    resumed_from: int  # epochs already done by an interrupted earlier attempt
    seconds: float


@dataclass
class EpochCallbacks:
    """Hooks the loop calls: ``on_epoch_end`` ones receive (epoch, logs); ``on_train_begin``
    ones (model, steps per epoch), once the model exists (restored when resuming) and
    before its first step."""

    on_epoch_end: list[Callable[[int, dict], None]] = field(default_factory=list)
    on_train_begin: list[Callable[[keras.Model, int], None]] = field(default_factory=list)


def batches(x: Any, batch_size: int) -> tf.data.Dataset:
    """Rows of ``x`` (an array or a dict of arrays) in order, batched."""
    return tf.data.Dataset.from_tensor_slices(x).batch(batch_size)


def rows_of(x: Any) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def select(x: Any, rows: Any) -> Any:
    """``x[rows]`` for an array, or for every array of a dict (rows: a slice or indices)."""
    return {k: v[rows] for k, v in x.items()} if isinstance(x, dict) else x[rows]


class Trainer:
    """Model, optimizer and the distributed train step for one fold."""

    def __init__(self, strategy: tf.distribute.Strategy, build: Callable[[], keras.Model], task: Any,
                 lr: float, loss: str = "auto"):
        self.strategy = strategy
        self.task = task
        with strategy.scope():
            self.model = build()
            self.optimizer = keras.optimizers.Adam(lr)
            if keras.mixed_precision.global_policy().name == "mixed_float16":
                # float16 gradients underflow without loss scaling
                self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
            # Slot variables must exist before the replicated step is traced: created lazily
            # inside strategy.run they fail under MirroredStrategy.
            self.optimizer.build(self.model.trainable_variables)
        self.loss = task.loss(loss)
        self._best_weights: list[np.ndarray] | None = None
        self._train_step = None
        model = self.model

        @tf.function(reduce_retracing=True)
        def forward(x):
            return model(x, training=False)

        self._forward = forward

    # -- the distributed step --------------------------------------------------------------
    def _build_step(self, global_batch: int) -> None:
        model, optimizer, loss_fn, strategy, task = self.model, self.optimizer, self.loss, self.strategy, self.task

        def train_replica(x, y):
            with tf.GradientTape() as tape:
                p = model(x, training=True)
                per_example = loss_fn(y, p)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
                if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                    loss = optimizer.scale_loss(loss)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return (tf.reduce_sum(per_example), tf.reduce_sum(task.batch_metric(y, p)),
                    tf.cast(tf.shape(per_example)[0], tf.float32))

        @tf.function
        def step(batch):
            out = strategy.run(train_replica, args=batch)
            return [strategy.reduce("SUM", v, axis=None) for v in out]

        self._train_step = step

    def _train_epoch(self, dataset) -> tuple[float, float]:
        # Sums stay on the device until the epoch ends: no host sync per step.
        totals = None
        for batch in self.strategy.experimental_distribute_dataset(dataset):
            out = self._train_step(batch)
            totals = out if totals is None else [a + b for a, b in zip(totals, out)]
        loss, metric, count = (float(t) for t in totals)
        return loss / max(count, 1.0), metric / max(count, 1.0)

    def outputs(self, x: Any, batch_size: int) -> np.ndarray:
        """The model's outputs on ``x`` (inference mode), on the host."""
        return np.concatenate([self._forward(b).numpy() for b in batches(x, batch_size)])

    def evaluate(self, x: Any, y: np.ndarray, batch_size: int) -> tuple[dict[str, float], np.ndarray]:
        """Validation loss, the device metric and the competition metric, and the outputs."""
        outputs = self.outputs(x, batch_size)
        loss = float(np.mean(np.asarray(self.loss(y, outputs))))
        metric = float(np.mean(np.asarray(self.task.batch_metric(y, outputs))))
        score = self.task.score(y, self.task.predictions(outputs))
        return {"val_loss": loss, f"val_{self.task.progress_metric}": metric, MONITOR: score}, outputs

    # -- the loop --------------------------------------------------------------------------
    def fit(self, train: tuple[Any, np.ndarray], val: tuple[Any, np.ndarray], *,
            epochs: int, global_batch: int, seed: int, patience: int,
            deadline: float = math.inf, state_dir: Path | None = None, is_chief: bool = True,
            callbacks: EpochCallbacks | None = None) -> LoopResult:
        """Train with early stopping on the competition metric; the best weights are loaded at the end."""
        began = time.monotonic()
        callbacks = callbacks or EpochCallbacks()
        self._build_step(global_batch)
        state = self._restore(state_dir) if state_dir else None
        history: dict[str, list[float]] = state["history"] if state else {}
        best = state["best"] if state else None
        wait = state["wait"] if state else 0
        start = state["epoch"] if state else 0
        best_weights = self._best_weights if state else None
        better = (lambda a, b: a > b) if self.task.higher_is_better else (lambda a, b: a < b)
        stopped_by_budget = False
        rows = rows_of(train[0])
        for hook in callbacks.on_train_begin:
            hook(self.model, math.ceil(rows / global_batch))

        for epoch in range(start, epochs):
            if state and state.get("stopped"):
                break
            t0 = time.monotonic()
            train_ds = (tf.data.Dataset.from_tensor_slices(train)
                        .shuffle(rows, seed=seed + epoch, reshuffle_each_iteration=False)
                        .batch(global_batch))
            loss, metric = self._train_epoch(train_ds)
            val_logs, _ = self.evaluate(val[0], val[1], global_batch)
            logs = {"loss": loss, self.task.progress_metric: metric, **val_logs,
                    "lr": float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))}
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            if best is None or better(logs[MONITOR], best):
                best, wait, best_weights = logs[MONITOR], 0, [v.numpy() for v in self.model.variables]
            else:
                wait += 1
            stop = wait >= patience
            if not stop and epoch + 1 < epochs and time.monotonic() + (time.monotonic() - t0) > deadline:
                stop = stopped_by_budget = True
            for hook in callbacks.on_epoch_end:
                hook(epoch, logs)
            if state_dir and is_chief:
                self._save(state_dir, epoch + 1, history, best, wait, best_weights, stop, stopped_by_budget)
            if stop:
                break

        if state and state.get("stopped_by_budget"):
            stopped_by_budget = True
        for var, value in zip(self.model.variables, best_weights):
            var.assign(value)
        scores = history[MONITOR]
        best_epoch = int(np.argmax(scores) if self.task.higher_is_better else np.argmin(scores)) + 1
        return LoopResult(history, best_epoch, len(scores), stopped_by_budget, start, time.monotonic() - began)

    # -- resume state ----------------------------------------------------------------------
    def _save(self, folder: Path, epoch: int, history, best, wait, best_weights, stopped, by_budget) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {f"model_{i}": v.numpy() for i, v in enumerate(self.model.variables)}
        arrays.update({f"opt_{i}": v.numpy() for i, v in enumerate(self.optimizer.variables)})
        arrays.update({f"best_{i}": w for i, w in enumerate(best_weights)})
        name = f"state-{epoch:04d}.npz"
        with atomic_path(folder / name) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        # Written last, state.json commits the epoch: a kill before it leaves the previous
        # epoch's json naming the previous (still present) arrays file.
        write_text(folder / STATE_JSON, json.dumps({
            "epoch": epoch, "arrays": name, "history": history, "best": best, "wait": wait,
            "stopped": stopped, "stopped_by_budget": by_budget}))
        for old in folder.glob("state-*.npz"):
            if old.name != name:
                old.unlink()

    def _restore(self, folder: Path) -> dict | None:
        if not (folder / STATE_JSON).is_file():
            return None
        state = json.loads((folder / STATE_JSON).read_text())
        with np.load(folder / state["arrays"]) as arrays:
            for i, v in enumerate(self.model.variables):
                v.assign(arrays[f"model_{i}"])
            for i, v in enumerate(self.optimizer.variables):
                v.assign(arrays[f"opt_{i}"])
            self._best_weights = [arrays[f"best_{i}"] for i in range(len(self.model.variables))]
        return state
