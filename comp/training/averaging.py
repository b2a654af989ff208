"""Weights a fold keeps besides the one it publishes, for the ensemble (docs/recipe.md 7).

- ``Snapshots``: the weights of the last k epochs (the top k by the competition metric on the
  fold's validation rows where early stopping runs); a checkpoint ensemble averages their
  predictions.
- ``RunningAverage``: SWA, the mean of the trainable weights at the end of each of the last
  ``epochs`` epochs of the (planned) schedule.
- EMA of the weights comes from the Keras optimizer itself (``use_ema``); ``ema_momentum``
  picks a momentum that averages over about ``EMA_EPOCHS`` epochs of steps.

Averaged weights have no BatchNorm statistics of their own: ``recalibrate_batchnorm``
recomputes them on training rows. Written by hand: TensorFlow Addons' SWA has been broken
since TF 2.11 and Keras 3 has no replacement; both components save and restore with the
resume state (``comp.training.state``) like the rest of the fold.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from comp.files import atomic_path, write_text
from comp.objective import Objective
from comp.training.callbacks import MONITOR, Callback

WEIGHTS_FILE = "weights.npz"  # in a fold's folder: every kept weight set, arrays "<set>/<i>"
WEIGHTS_INFO = "weights.json"  # which sets, from which epochs, with which validation scores
EMA_EPOCHS = 2.0  # the EMA's horizon: 1 / (1 - momentum) steps = this many epochs
RECALIBRATION_ROWS = 4096  # BatchNorm statistics are estimated on at most this many training rows


def ema_momentum(setting: Any, steps_per_epoch: int) -> float:
    """``train.keep_ema`` -> the optimizer's EMA momentum (0: off). ``auto`` averages over
    about ``EMA_EPOCHS`` epochs: Keras's 0.99 would average over the whole of a small run."""
    if setting in (False, None, 0, "off"):
        return 0.0
    if setting in (True, "auto"):
        return float(np.clip(1.0 - 1.0 / (EMA_EPOCHS * max(steps_per_epoch, 1)), 0.9, 0.9999))
    return float(setting)


class Snapshots(Callback):
    """The weights (all model variables) of the last ``k`` epochs, latest first, as evaluated
    (``on_test_end``: with the EMA of the weights when ``train.ema`` swaps it in); where early
    stopping runs (``keep_best``), the ``k`` best epochs so far, best first. The last epochs of
    a decayed schedule are chosen without the fold's labels, so their OOF score is honest."""

    name = "snapshots"
    variable_arrays = True

    def __init__(self, k: int, objective: Objective, n_variables: int, keep_best: Callable[[], bool] = lambda: True):
        super().__init__()
        self.k, self.objective, self.n, self.keep_best = k, objective, n_variables, keep_best
        self.entries: list[dict] = []  # {"epoch", "score"}
        self.weights: list[list[np.ndarray]] = []
        self._epoch = 0

    def offer(self, score: float, epoch: int, weights: Callable[[], list[np.ndarray]]) -> None:
        if self.k <= 0:
            return
        if not self.keep_best():
            self.entries.insert(0, {"epoch": epoch, "score": float(score)})
            self.weights.insert(0, weights())
            del self.entries[self.k:], self.weights[self.k:]
            return
        if len(self.entries) >= self.k and not self.objective.better(score, self.entries[-1]["score"]):
            return
        taken = weights()
        at = next((i for i, e in enumerate(self.entries) if self.objective.better(score, e["score"])),
                  len(self.entries))
        self.entries.insert(at, {"epoch": epoch, "score": float(score)})
        self.weights.insert(at, taken)
        del self.entries[self.k:], self.weights[self.k:]

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_test_end(self, logs=None):
        self.offer(logs[MONITOR], self._epoch + 1, lambda: [v.numpy() for v in self.model.variables])

    def get_state(self) -> dict:
        return {"entries": self.entries}

    def set_state(self, state: dict) -> None:
        self.entries = list(state.get("entries", []))

    def get_arrays(self) -> list[np.ndarray]:
        return [a for w in self.weights for a in w]

    def set_arrays(self, arrays: list[np.ndarray]) -> None:
        self.weights = [list(arrays[i:i + self.n]) for i in range(0, len(arrays), self.n)]


class RunningAverage(Callback):
    """The mean of the trainable weights at the end of each epoch in the last ``epochs`` of
    the plan (SWA; the trainer's ``plan.epochs``). A budget plan only shrinks once settled, so
    the window only moves earlier: it may average fewer epochs than asked, never epochs
    outside it."""

    name = "swa"
    variable_arrays = True

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self.count = 0
        self.first = 0
        self.mean: list[np.ndarray] = []

    def offer(self, epoch: int, planned: int, weights: Callable[[], list[np.ndarray]]) -> None:
        """``epoch`` (1-based) just ended of ``planned`` in all."""
        if self.epochs <= 0 or epoch <= planned - self.epochs:
            return
        current = weights()
        if not self.count:
            self.mean, self.first = [np.array(w, dtype=np.float64) for w in current], epoch
        else:
            for m, w in zip(self.mean, current):
                m += (w - m) / (self.count + 1)
        self.count += 1

    def on_epoch_end(self, epoch, logs=None):
        self.offer(epoch + 1, self.trainer.plan.epochs, lambda: [v.numpy() for v in self.model.trainable_variables])

    def get_state(self) -> dict:
        return {"count": self.count, "first": self.first}

    def set_state(self, state: dict) -> None:
        self.count, self.first = int(state.get("count", 0)), int(state.get("first", 0))

    def get_arrays(self) -> list[np.ndarray]:
        return self.mean

    def set_arrays(self, arrays: list[np.ndarray]) -> None:
        self.mean = [np.array(a, dtype=np.float64) for a in arrays]


def save_weight_sets(folder: Path, sets: dict[str, list[np.ndarray]], info: dict[str, dict]) -> None:
    """``weights.npz`` (arrays) and then ``weights.json`` (what they are), each atomically."""
    arrays = {f"{name}/{i}": a for name, weights in sets.items() for i, a in enumerate(weights)}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    write_text(folder / WEIGHTS_INFO, json.dumps(info, indent=1))


def load_weight_sets(folder: Path) -> tuple[dict[str, list[np.ndarray]], dict[str, dict]]:
    """What ``save_weight_sets`` wrote; empty when the fold kept none."""
    if not (folder / WEIGHTS_INFO).is_file():
        return {}, {}
    info = json.loads((folder / WEIGHTS_INFO).read_text())
    sets: dict[str, list[np.ndarray]] = {}
    with np.load(folder / WEIGHTS_FILE) as stored:
        for name in info:
            count = 0
            while f"{name}/{count}" in stored.files:
                count += 1
            sets[name] = [stored[f"{name}/{i}"] for i in range(count)]
    return sets, info


def assign(model, weights: list[np.ndarray]) -> None:
    """Every variable of ``model`` (``model.variables`` order) from ``weights``."""
    for var, value in zip(model.variables, weights):
        var.assign(np.asarray(value, dtype=var.dtype))


def recalibrate_batchnorm(model, x: Any, batch_size: int = 128, rows: int = RECALIBRATION_ROWS,
                          seed: int = 0) -> int:
    """Recompute every BatchNorm layer's moving statistics for the current weights: reset,
    then the exact mean over training batches (momentum (i-1)/i at batch i, as PyTorch's
    ``update_bn``). The model runs in training mode, as when the statistics were first
    gathered; nothing but the statistics changes. Returns how many layers there were."""
    import tensorflow as tf

    from comp.training.batchnorm import batchnorm_layers
    from comp.training.feeding import batches, rows_of, select

    layers = list(batchnorm_layers(model))
    if not layers:
        return 0
    n = rows_of(x)
    if n > rows:
        x = select(x, np.sort(np.random.default_rng(seed).choice(n, rows, replace=False)))
    saved = {id(layer): layer.momentum for layer in layers}
    trainable = [(v, v.numpy()) for v in model.trainable_variables]
    for layer in layers:
        layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))
        layer.moving_variance.assign(tf.ones_like(layer.moving_variance))
    try:
        from comp.training.memory import inference_batch

        batch_size = inference_batch(model, batch_size)  # forward passes only, as inference
        for i, batch in enumerate(batches(x, batch_size), start=1):
            for layer in layers:  # read when the layer runs: eager calls see each new value
                layer.momentum = (i - 1) / i
            model(batch, training=True)
    finally:
        for layer in layers:
            layer.momentum = saved[id(layer)]
    for var, value in trainable:  # defensive: a training-mode call must not move a weight
        var.assign(value)
    return len(layers)
