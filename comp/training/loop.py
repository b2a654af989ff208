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
epoch (``comp.training.state``) holds all model variables (weights and RNG states), the
optimizer's variables (slots, step, EMA of the weights), the schedule's plan and plateau
scale, the best weights, the history and the early-stopping counter.
"""
from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from comp.training.strategy import worker_role

MONITOR = "val_score"  # the competition metric on the validation rows
PLAN_MARGIN = 0.95  # a budget plan uses this share of the time left: epochs vary a little


class OutOfTime(Exception):
    """A fit's hard deadline passed before it finished one epoch: nothing to score."""


@dataclass
class LoopResult:
    history: dict[str, list[float]]
    best_epoch: int  # 1-based
    epochs_run: int
    stopped_by_budget: bool
    resumed_from: int  # epochs already done by an interrupted earlier attempt
    seconds: float
    plan: dict  # budget plan: budgeted, max_epochs, epochs (planned), epoch_seconds, fold_seconds


@dataclass
class EpochCallbacks:
    """Hooks the loop calls: ``on_epoch_end`` ones receive (epoch, logs); ``on_train_begin``
    ones (model, steps per epoch), once the model exists (restored when resuming) and
    before its first step; ``on_train_end`` ones after training, before the best weights are
    loaded, with True when the model holds the last finished epoch's weights (False: training
    stopped inside an epoch)."""

    on_epoch_end: list[Callable[[int, dict], None]] = field(default_factory=list)
    on_train_begin: list[Callable[[keras.Model, int], None]] = field(default_factory=list)
    on_train_end: list[Callable[[bool], None]] = field(default_factory=list)


def streamed(leaf: Any) -> bool:
    """Rows read on demand (e.g. ``comp.data.rows.DiskRows``: ``read(positions)``, ``shape``,
    ``dtype``) rather than an array held in memory."""
    return getattr(leaf, "streamed", False)


def _gather(data: Any) -> Callable:
    """``index -> data's rows at index``: a gather from host tensors, a read for streamed rows."""
    def one(leaf, index):
        if not streamed(leaf):
            return tf.gather(leaf, index)
        if hasattr(leaf, "host_tensor"):  # rows of an array in memory (comp.data.rows.MemoryRows)
            rows = index if leaf.index is None else tf.gather(tf.constant(leaf.index), index)
            return tf.gather(leaf.host_tensor(), rows)
        rows = tf.numpy_function(leaf.read, [index], tf.as_dtype(leaf.dtype), stateful=False)
        rows.set_shape([None, *leaf.shape[1:]])
        return rows

    return lambda index: tf.nest.map_structure(lambda leaf: one(leaf, index), data)


def batches(x: Any, batch_size: int) -> tf.data.Dataset:
    """Rows of ``x`` (an array, streamed rows, or a dict of them) in order, batched."""
    if not any(streamed(leaf) for leaf in tf.nest.flatten(x)):
        return tf.data.Dataset.from_tensor_slices(x).batch(batch_size)
    n = rows_of(x)
    return (tf.data.Dataset.range(0, n, batch_size)
            .map(lambda start: tf.range(start, tf.minimum(start + batch_size, n)))
            .map(_gather(device_data(x)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


def device_data(data: Any) -> Any:
    """``data`` (arrays, or tuples/dicts of them) as host tensors, copied once for a whole
    fit: every epoch gathers its batches from these by index. Streamed rows stay where
    they are (on disk): batches read them."""
    with tf.device("/cpu:0"):
        return tf.nest.map_structure(lambda leaf: leaf if streamed(leaf) else tf.convert_to_tensor(leaf), data)


def training_batches(data: Any, rows: int, batch_size: int, seed: int, epochs: range) -> tf.data.Dataset:
    """The batches of ``epochs`` one after another, each epoch in the order a seeded
    permutation gives (``seed + epoch``: a resumed fit continues with the same batches),
    gathered in parallel and prefetched across epoch ends (the next epoch's first batches
    load while this one is evaluated). No copy of the data per epoch and no shuffle buffer
    holding one; one dataset for the whole fit, so it is distributed once."""
    def order(epoch):
        return np.random.default_rng(seed + int(epoch)).permutation(rows)

    def epoch_rows(epoch):
        permutation = tf.numpy_function(order, [epoch], tf.int64, stateful=False)
        permutation.set_shape([rows])
        return tf.data.Dataset.from_tensor_slices(permutation).batch(batch_size)

    return (tf.data.Dataset.from_tensor_slices(np.asarray(list(epochs), dtype=np.int64)).flat_map(epoch_rows)
            .map(_gather(data), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


def epoch_batches(data: Any, rows: int, batch_size: int, seed: int) -> tf.data.Dataset:
    """One epoch of ``training_batches`` (data from ``device_data``)."""
    return training_batches(data, rows, batch_size, seed, range(1))


def use_xla(setting: str, model: keras.Model) -> bool:
    """Whether to compile the train step with XLA: ``on``, ``off``, or ``auto``: Keras's rule
    for ``jit_compile="auto"`` on a GPU (every layer supports XLA, and op determinism is
    off), with the affine augmentation layers XLA cannot compile counted out. comp turns op
    determinism on (exact resume, reproducible runs), so ``auto`` stays off unless that is
    lifted: with it XLA cannot compile common ops (MaxPoolGrad: "Unimplemented", measured).
    A step that does not compile trains without XLA after one notice (``on`` included)."""
    if setting in ("on", "off"):
        return setting == "on"
    from comp.training.batchnorm import nested_layers

    return bool(tf.config.list_logical_devices("GPU")) and not op_determinism() and all(
        getattr(layer, "supports_jit", True) and not isinstance(layer, XLA_UNSUPPORTED)
        for layer in nested_layers(model))


def op_determinism() -> bool:
    from tensorflow.python.framework.config import is_op_determinism_enabled  # what Keras itself reads

    return bool(is_op_determinism_enabled())


# Keras's affine augmentation layers claim XLA support, but under TensorFlow they run
# ImageProjectiveTransformV3, which has no XLA kernel ("Detected unsupported operations",
# measured): auto leaves XLA off for models holding them rather than fail to compile.
XLA_UNSUPPORTED = (keras.layers.RandomTranslation, keras.layers.RandomRotation, keras.layers.RandomZoom)


def make_forward(model: keras.Model, view: Any = None) -> Callable:
    """``model`` in inference mode as a traced function, each batch first through ``view`` (a
    fixed test-time view, e.g. ``comp.layers.AffineView``) when given. Traced once, on the
    first batch, with the batch dimension left open (a last, smaller batch reuses the trace).
    Keep it to reuse the trace: weights assigned later are read by it, not baked in."""
    def call(batch):
        return model(batch if view is None else view(batch), training=False)

    traced = None

    def forward(batch):
        nonlocal traced
        if traced is None:
            spec = tf.nest.map_structure(lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), batch)
            traced = tf.function(call, input_signature=[spec])
        return traced(batch)

    return forward


def predict_outputs(model: keras.Model, x: Any, batch_size: int = 256, view: Any = None,
                    forward: Callable | None = None) -> np.ndarray:
    """``model``'s outputs on ``x`` in inference mode, batch by batch (through ``view`` when
    given): one batched pass. Unlike ``model.predict`` it takes string columns (object arrays)
    and works under every strategy. ``forward``: a ``make_forward`` result to reuse."""
    forward = forward or make_forward(model, view)
    return np.concatenate([forward(b).numpy() for b in batches(x, batch_size)])


def plan_epochs(max_epochs: int, done: int, epoch_seconds: float, seconds_left: float,
                at_most: int | None = None) -> int:
    """Epochs a fold can run in all: those done plus what fits in ``PLAN_MARGIN`` of the
    seconds left, at least the ones done, at most ``max_epochs`` (and ``at_most``, once a plan
    may only shrink)."""
    fits = done + int(max(seconds_left, 0.0) * PLAN_MARGIN // max(epoch_seconds, 1e-9))
    epochs = max(done, min(max_epochs, fits))
    return min(epochs, at_most) if at_most is not None else epochs


def rows_of(x: Any) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def select(x: Any, rows: Any) -> Any:
    """``x[rows]`` for an array, or for every array of a dict (rows: a slice or indices)."""
    return {k: v[rows] for k, v in x.items()} if isinstance(x, dict) else x[rows]


class BestWeights:
    """The weights of the best epoch so far (by the competition metric), kept on the host."""

    name = "best"
    variable_arrays = True  # none before the first epoch is scored

    def __init__(self, higher_is_better: bool):
        self.higher_is_better = higher_is_better
        self.score: float | None = None
        self.epoch = 0
        self.weights: list[np.ndarray] = []

    def offer(self, score: float, epoch: int, weights: Callable[[], list[np.ndarray]]) -> bool:
        better = self.score is None or (score > self.score if self.higher_is_better else score < self.score)
        if better:
            self.score, self.epoch, self.weights = score, epoch, weights()
        return better

    def get_state(self) -> dict:
        return {"score": self.score, "epoch": self.epoch}

    def set_state(self, state: dict) -> None:
        self.score, self.epoch = state["score"], state["epoch"]

    def get_arrays(self) -> list[np.ndarray]:
        return self.weights

    def set_arrays(self, arrays: list[np.ndarray]) -> None:
        self.weights = list(arrays)


class Trainer:
    """Model, optimizer, LR schedule and the distributed train step for one fold."""

    def __init__(self, strategy: tf.distribute.Strategy, build: Callable[[], keras.Model], task: Any,
                 spec: Any, lr: float, steps_per_epoch: int, mixer: Callable | None = None):
        from comp.training.averaging import RunningAverage, Snapshots, ema_momentum
        from comp.training.optimizers import build_optimizer, exclude_from_decay
        from comp.training.schedules import Plateau, PlannedSchedule

        self.strategy, self.task, self.spec = strategy, task, spec
        self.steps_per_epoch = steps_per_epoch
        self.mixer = mixer
        with strategy.scope():
            self.model = build()
            self.schedule = PlannedSchedule(lr, spec.schedule, spec.epochs * steps_per_epoch,
                                            warmup_steps=round(spec.warmup * steps_per_epoch))
            # train.ema evaluates (and keeps) the average; otherwise keep_ema only keeps one for the ensemble
            self.ema_momentum = spec.ema or ema_momentum(spec.keep_ema, steps_per_epoch)
            self.optimizer = build_optimizer(spec.optimizer, self.schedule, weight_decay=spec.weight_decay,
                                             clip=spec.clip, ema=self.ema_momentum)
            exclude_from_decay(self.optimizer, self.model.trainable_variables)
            if keras.mixed_precision.global_policy().name == "mixed_float16":
                # float16 gradients underflow without loss scaling
                self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
            # Slot variables must exist before the replicated step is traced: created lazily
            # inside strategy.run they fail under MirroredStrategy.
            self.optimizer.build(self.model.trainable_variables)
        self.loss = task.loss(spec.loss, spec.label_smoothing)
        self.plateau = Plateau(self.schedule, task.higher_is_better) if spec.schedule == "plateau" else None
        self.best = BestWeights(task.higher_is_better)
        self.snapshots = Snapshots(spec.snapshots, task.higher_is_better, len(self.model.variables))
        self.swa = RunningAverage(spec.swa_epochs)
        self._train_step = None
        self._forward = make_forward(self.model)
        self.xla = use_xla(spec.xla, self.model)
        self._xla_proven = False

    # -- the distributed step --------------------------------------------------------------
    def _build_step(self, global_batch: int, seed: int) -> None:
        model, optimizer, loss_fn, strategy, task = self.model, self.optimizer, self.loss, self.strategy, self.task
        mixer = self.mixer

        def train_replica(x, y):
            if mixer is not None:
                # A stateless seed per step: the same mixes after a resume. The loss mixes
                # instead of the labels, so every task's targets work unchanged.
                step_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(optimizer.iterations, tf.int64)])
                x, partner, weight = mixer(x, step_seed)
            with tf.GradientTape() as tape:
                p = model(x, training=True)
                per_example = loss_fn(y, p)
                if mixer is not None:
                    per_example = weight * per_example + (1.0 - weight) * loss_fn(tf.gather(y, partner), p)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
                if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                    loss = optimizer.scale_loss(loss)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return (tf.reduce_sum(per_example), tf.reduce_sum(task.batch_metric(y, p)),
                    tf.cast(tf.shape(per_example)[0], tf.float32))

        replica_step = train_replica
        if self.xla:
            # XLA compiles the per-replica step (as Keras does under a strategy); the
            # cross-replica reduction stays outside the compiled function.
            replica_step = tf.function(train_replica, jit_compile=True)

        def step(batch):
            out = strategy.run(replica_step, args=batch)
            return [strategy.reduce("SUM", v, axis=None) for v in out]

        self._step_fn, self._train_step = step, None
        self._step_args = (global_batch, seed)

    def distribute(self, dataset: tf.data.Dataset):
        """An iterator over ``dataset`` (a whole fit's batches) distributed to the replicas,
        with the step traced for its element spec: both once per fit."""
        distributed = self.strategy.experimental_distribute_dataset(dataset)
        if self._train_step is None:
            # The signature leaves the batch dimension open, so the last, smaller batch of an
            # epoch does not trace a second step.
            self._train_step = tf.function(self._step_fn, input_signature=[distributed.element_spec])
        self._element_spec = distributed.element_spec
        return iter(distributed)

    def _train_epoch(self, batches, steps: int, stop_at: float = math.inf) -> tuple[float, float] | None:
        """``steps`` steps on the next batches of ``batches`` (from ``distribute``); None when
        the clock passed ``stop_at`` after the first step and before the last."""
        # Sums stay on the device until the epoch ends: no host sync per step.
        totals = None
        for i in range(steps):
            if i and stop_at < math.inf and time.monotonic() > stop_at:
                return None
            batch = next(batches, None)
            if batch is None:  # the dataset holds exactly the planned epochs' batches
                raise RuntimeError("the training batches ran out before the epoch's steps: the distributed "
                                   "dataset rebatched across epochs")
            if totals is None and self.xla and not self._xla_proven:
                out = self._first_xla_step(batch, self._element_spec)
            else:
                out = self._train_step(batch)
            totals = out if totals is None else [a + b for a, b in zip(totals, out)]
        loss, metric, count = (float(t) for t in totals)
        return loss / max(count, 1.0), metric / max(count, 1.0)

    def _first_xla_step(self, batch, element_spec):
        """The first XLA step of a fit: a model XLA cannot compile
        (an op without an XLA kernel, a deterministic op XLA lacks) trains without it, said
        once per fold, instead of failing. Compilation fails before anything runs, so no
        weight moved."""
        try:
            out = self._train_step(batch)
            self._xla_proven = True
            return out
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.InternalError) as exc:
            print(f"notice: train.xla={self.spec.xla}: the train step does not compile with XLA "
                  f"({str(exc).strip().splitlines()[0][:160]}); training without it", flush=True)
            self.xla = False
            self._build_step(*self._step_args)
            self._train_step = tf.function(self._step_fn, input_signature=[element_spec])
            return self._train_step(batch)

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

    def _weights(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.model.variables]

    def _trainable(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.model.trainable_variables]

    def weight_sets(self) -> tuple[dict[str, list[np.ndarray]], dict[str, dict]]:
        """The weights kept for the ensemble, each a full ``model.variables`` list: the top-k
        epochs (``snapshot_<rank>``), the SWA mean (``swa``) and the optimizer's EMA (``ema``).
        Averaged sets take their other variables (BatchNorm statistics) from the loaded
        weights: they need ``averaging.recalibrate_batchnorm`` before use."""
        from comp.training.optimizers import ema_values

        sets, info = {}, {}
        for rank, (entry, weights) in enumerate(zip(self.snapshots.entries, self.snapshots.weights), start=1):
            sets[f"snapshot_{rank}"], info[f"snapshot_{rank}"] = weights, {"kind": "snapshot", **entry}
        position = {id(v): i for i, v in enumerate(self.model.variables)}
        trainable = [position[id(v)] for v in self.model.trainable_variables]

        def with_trainable(values) -> list[np.ndarray]:
            full = self._weights()
            for i, value in zip(trainable, values):
                full[i] = np.asarray(value, dtype=full[i].dtype)
            return full

        if self.swa.count:
            sets["swa"] = with_trainable(self.swa.mean)
            info["swa"] = {"kind": "average", "epochs": list(range(self.swa.first, self.swa.first + self.swa.count))}
        averaged = ema_values(self.optimizer)
        if averaged is not None:
            sets["ema"] = with_trainable(averaged)
            info["ema"] = {"kind": "average", "momentum": self.ema_momentum}
        return sets, info

    def _evaluate_epoch(self, val, batch_size: int, epoch: int) -> dict[str, float]:
        """Evaluate (with the EMA of the weights swapped in, when there is one) and keep the
        best weights; the raw weights go back for the next epoch."""
        from comp.training.optimizers import ema_values

        averaged = ema_values(self.optimizer) if self.spec.ema else None
        raw = None
        if averaged is not None:
            raw = [v.numpy() for v in self.model.trainable_variables]
            for var, value in zip(self.model.trainable_variables, averaged):
                var.assign(value)
        logs, _ = self.evaluate(val[0], val[1], batch_size)
        self.best.offer(logs[MONITOR], epoch + 1, self._weights)
        self.snapshots.offer(logs[MONITOR], epoch + 1, self._weights)
        if raw is not None:
            for var, value in zip(self.model.trainable_variables, raw):
                var.assign(value)
        return logs

    def state(self, history, stopping, plan):
        from comp.training.state import TrainingState, Variables

        parts = [Variables("model", self.model.variables), Variables("optimizer", self.optimizer.variables),
                 Variables("schedule", self.schedule.variables()), self.best, self.snapshots, self.swa,
                 history, stopping, plan]
        if self.plateau:
            parts.append(self.plateau)
        return TrainingState(parts)

    # -- the loop --------------------------------------------------------------------------
    def fit(self, train: tuple[Any, np.ndarray], val: tuple[Any, np.ndarray], *,
            epochs: int, global_batch: int, seed: int, patience: int, deadline: float = math.inf,
            hard_deadline: float = math.inf, state_dir: Path | None = None, is_chief: bool = True,
            callbacks: EpochCallbacks | None = None) -> LoopResult:
        """Train and load the best weights (by the competition metric) at the end.

        With a finite ``deadline`` (a budget) training is planned, not cut: the first
        epochs are timed and the schedule is stretched or shrunk so that it ends, decayed,
        before the deadline (``plan`` in the result). A decaying schedule (cosine, one-cycle,
        step) runs to its end; a constant or plateau one without a budget stops after
        ``patience`` epochs without improvement.

        Past ``hard_deadline`` training stops inside the running epoch, which is dropped (the
        best of the finished ones stands); with none finished it raises ``OutOfTime``. Only on
        one worker: workers would have to agree on the step to stop at.
        """
        from comp.training.state import DamagedState, Record

        began = time.monotonic()
        callbacks = callbacks or EpochCallbacks()
        self._build_step(global_batch, seed)
        history = Record("history")
        stopping = Record("stopping", wait=0, stopped=False, stopped_by_budget=False)
        plan = Record("plan", budgeted=math.isfinite(deadline), max_epochs=epochs, epochs=epochs,
                      epoch_seconds=None, fold_seconds=None)
        state = self.state(history, stopping, plan)
        try:
            saved = state.restore(state_dir) if state_dir else None
        except DamagedState as exc:
            print(f"notice: {exc}; the fold starts again", flush=True)
            shutil.rmtree(state_dir, ignore_errors=True)
            saved = None
        start = saved["epoch"] if saved else 0
        plan.data["budgeted"] = math.isfinite(deadline)  # this attempt's budget, resumed or not
        if not saved and plan.data["budgeted"]:
            plan.data["fold_seconds"] = round(deadline - began, 1)
        rows = rows_of(train[0])
        train_batches = self.distribute(training_batches(device_data(train), rows, global_batch, seed,
                                                         range(start, epochs)))
        steps = math.ceil(rows / global_batch)  # what the data give (the schedule was told the same)
        stop_at = hard_deadline if worker_role()[1] == 1 else math.inf
        interrupted = False
        for hook in callbacks.on_train_begin:
            hook(self.model, self.steps_per_epoch)
        timings: list[float] = []

        for epoch in range(start, epochs):
            if stopping.data["stopped"] or epoch >= plan.data["epochs"]:
                break
            t0 = time.monotonic()
            lr = float(self.schedule(self.optimizer.iterations))  # the LR this epoch starts with
            ran = time.monotonic() <= stop_at
            sums = self._train_epoch(train_batches, steps, stop_at) if ran else None
            if sums is None:  # the hard deadline passed before or inside this epoch
                if epoch == 0:
                    raise OutOfTime(f"the deadline passed {time.monotonic() - began:.0f}s into the fit, before its "
                                    f"first epoch of {steps} steps finished")
                stopping.data["stopped"] = stopping.data["stopped_by_budget"] = True
                interrupted = ran  # some of this epoch's steps moved the weights
                break
            loss, metric = sums
            logs = {"loss": loss, self.task.progress_metric: metric,
                    **self._evaluate_epoch(val, global_batch, epoch), "lr": lr}
            for key, value in logs.items():
                history.data.setdefault(key, []).append(value)
            if self.plateau:
                self.plateau.on_epoch_end(logs[MONITOR])
            improved = self.best.epoch == epoch + 1
            stopping.data["wait"] = 0 if improved else stopping.data["wait"] + 1
            for hook in callbacks.on_epoch_end:
                hook(epoch, logs)
            timings.append(time.monotonic() - t0)  # the whole epoch: training, evaluation, hooks
            # A resumed attempt's first epoch includes tracing: its plan (which may only shrink)
            # waits for the second; the check below still stops an epoch that would not fit.
            if plan.data["budgeted"] and not (start > 0 and len(timings) == 1):
                self._plan(plan, timings, deadline, epoch, settled=len(timings) > 2 or start > 0)
            self.swa.offer(epoch + 1, plan.data["epochs"], self._trainable)
            stop = self._early_stopping(plan) and stopping.data["wait"] >= patience
            if (not stop and epoch + 1 < plan.data["epochs"]
                    and time.monotonic() + timings[-1] > deadline):  # even the shrunk plan does not fit
                stop = stopping.data["stopped_by_budget"] = True
            stopping.data["stopped"] = stop
            if state_dir and is_chief:
                state.save(state_dir, epoch + 1)
            if stop:
                break

        for hook in callbacks.on_train_end:
            hook(not interrupted)
        for var, value in zip(self.model.variables, self.best.weights):
            var.assign(value)
        return LoopResult(history.data, self.best.epoch, len(history.data[MONITOR]),
                          stopping.data["stopped_by_budget"], start, time.monotonic() - began, dict(plan.data))

    def _early_stopping(self, plan) -> bool:
        """Only for schedules that do not end by themselves (constant, plateau) and without a
        budget plan. A decaying schedule runs to its end: on the digits demo stopping a 40-epoch
        cosine schedule early (patience 10, at epoch ~20) gave OOF 0.9896, running it out 0.9937."""
        return not plan.data["budgeted"] and self.spec.schedule in ("constant", "plateau")

    def _plan(self, plan, timings: list[float], deadline: float, epoch: int, settled: bool) -> None:
        """Fit the schedule into the time left, with a margin. After the first epoch from its
        time (tracing included, so on the safe side); after later ones from the mean of those
        after the first. Once ``settled`` (three epochs in, or resumed) only ever shorter: a
        schedule that stretched late would raise the LR again, one that shrinks a little just
        decays a little sooner."""
        seconds = timings[0] if len(timings) == 1 else float(np.mean(timings[1:]))
        epochs = plan_epochs(plan.data["max_epochs"], epoch + 1, seconds, deadline - time.monotonic(),
                             plan.data["epochs"] if settled else None)
        if epochs != plan.data["epochs"] or plan.data["epoch_seconds"] is None:
            self.schedule.plan(epochs * self.steps_per_epoch)
        plan.data.update(epochs=epochs, epoch_seconds=round(seconds, 3))
