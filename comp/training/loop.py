"""One training loop for every tf.distribute strategy, resumable after any epoch.

Why not ``model.fit``: under MultiWorkerMirroredStrategy it fails ("unsupported type ...
PerReplica", keras issue #20585), and its BackupAndRestore cannot restore early-stopping
state. This loop runs a custom step with ``strategy.run`` over a distributed dataset,
``tf.nn.compute_average_loss`` and the Keras optimizer, the same code on one CPU, one GPU,
several GPUs and several workers. Early stopping, best-weights tracking and the resume
state are kept here (written by hand because no library offers them for custom loops).

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


class Trainer:
    """Model, optimizer and the distributed train/eval steps for one fold."""

    def __init__(self, strategy: tf.distribute.Strategy, build: Callable[[], keras.Model], task: Any,
                 lr: float):
        self.strategy = strategy
        with strategy.scope():
            self.model = build()
            self.optimizer = keras.optimizers.Adam(lr)
            if keras.mixed_precision.global_policy().name == "mixed_float16":
                # float16 gradients underflow without loss scaling
                self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
            # Slot variables must exist before the replicated step is traced: created lazily
            # inside strategy.run they fail under MirroredStrategy.
            self.optimizer.build(self.model.trainable_variables)
        self.loss = task.loss()
        self.loss.reduction = "none"
        self._best_weights: list[np.ndarray] | None = None
        self._train_step = None
        self._eval_step = None

    # -- the distributed steps -------------------------------------------------------------
    def _build_steps(self, global_batch: int) -> None:
        model, optimizer, loss_fn, strategy = self.model, self.optimizer, self.loss, self.strategy

        def correct(y, p):
            return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(p, axis=-1, output_type=tf.int32),
                                                  tf.cast(y, tf.int32)), tf.float32))

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
            return tf.reduce_sum(per_example), correct(y, p), tf.cast(tf.shape(y)[0], tf.float32)

        def eval_replica(x, y):
            p = model(x, training=False)
            return tf.reduce_sum(loss_fn(y, p)), correct(y, p), tf.cast(tf.shape(y)[0], tf.float32)

        def reduced(fn):
            @tf.function
            def step(batch):
                out = strategy.run(fn, args=batch)
                return [strategy.reduce("SUM", v, axis=None) for v in out]
            return step

        self._train_step, self._eval_step = reduced(train_replica), reduced(eval_replica)

    def _run_epoch(self, step, dataset) -> tuple[float, float]:
        total = hits = count = 0.0
        for batch in self.strategy.experimental_distribute_dataset(dataset):
            s, c, n = step(batch)
            total, hits, count = total + float(s), hits + float(c), count + float(n)
        return total / max(count, 1.0), hits / max(count, 1.0)

    # -- the loop --------------------------------------------------------------------------
    def fit(self, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], *,
            epochs: int, global_batch: int, seed: int, monitor: str, mode: str, patience: int,
            deadline: float = math.inf, state_dir: Path | None = None, is_chief: bool = True,
            callbacks: EpochCallbacks | None = None) -> LoopResult:
        """Train with early stopping on ``monitor``; the best weights are loaded at the end."""
        began = time.monotonic()
        callbacks = callbacks or EpochCallbacks()
        self._build_steps(global_batch)
        val_ds = tf.data.Dataset.from_tensor_slices(val).batch(global_batch)
        state = self._restore(state_dir) if state_dir else None
        history: dict[str, list[float]] = state["history"] if state else {}
        best = state["best"] if state else None
        wait = state["wait"] if state else 0
        start = state["epoch"] if state else 0
        best_weights = self._best_weights if state else None
        better = (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)
        stopped_by_budget = False
        for hook in callbacks.on_train_begin:
            hook(self.model, math.ceil(len(train[0]) / global_batch))

        for epoch in range(start, epochs):
            if state and state.get("stopped"):
                break
            t0 = time.monotonic()
            train_ds = (tf.data.Dataset.from_tensor_slices(train)
                        .shuffle(len(train[0]), seed=seed + epoch, reshuffle_each_iteration=False)
                        .batch(global_batch))
            loss, acc = self._run_epoch(self._train_step, train_ds)
            val_loss, val_acc = self._run_epoch(self._eval_step, val_ds)
            logs = {"loss": loss, "accuracy": acc, "val_loss": val_loss, "val_accuracy": val_acc,
                    "lr": float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))}
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            if best is None or better(logs[monitor], best):
                best, wait, best_weights = logs[monitor], 0, [v.numpy() for v in self.model.variables]
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
        scores = history[monitor]
        best_epoch = int(np.argmax(scores) if mode == "max" else np.argmin(scores)) + 1
        return LoopResult(history, best_epoch, len(scores), stopped_by_budget, start,
                          time.monotonic() - began)

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
