"""One training loop for every tf.distribute strategy and every task kind, resumable after any epoch.

Why not ``model.fit``: under MultiWorkerMirroredStrategy it fails ("unsupported type ...
PerReplica", keras issue #20585), and its BackupAndRestore cannot restore early-stopping
state. The ``Trainer`` runs a custom step with ``strategy.run`` over a distributed dataset,
``tf.nn.compute_average_loss`` and the Keras optimizer, the same code on one CPU, one GPU,
several GPUs and several workers, and drives a list of callbacks
(``comp.training.callbacks``): the recipe's own (best weights, early stopping, the budget
plan, reduce-on-plateau, snapshots, SWA, the EMA swap) and the caller's (diagnostics,
progress). The pre-flight checks (``comp.training.sanity``) train on it too.

The task supplies the loss and the metric tracked on the device (``task.batch_metric``);
after each epoch the validation rows are predicted in full and scored with the
competition metric itself (``task.score``: AUC, F1, RMSE, exact match, ...), which is
what early stopping and the best weights follow (the ``val_score`` log key).

Resume is exact: each epoch's batches come from its own seeded order, and the state saved
after every epoch (``comp.training.state``) holds all model variables (weights and RNG
states), the optimizer's variables (slots, step, EMA of the weights), the schedule's
variables and every named callback's state (best weights, the plan, the history, ...).
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

from comp import clock
from comp.training.callbacks import (MONITOR, BestWeights, BudgetPlan, Callback, EarlyStopping, EMASwap, History,
                                     wants_batches)
from comp.training.feeding import Order, batches, device_data, epoch_length, rows_of, shuffled, training_batches
from comp.training.inference import make_forward
from comp.training.strategy import worker_role
from comp.training.xla import use_xla


EARLY_PLAN_STEPS = 6  # a budgeted fit's first plan comes after this many steps (or a tenth of the first epoch)


class OutOfTime(Exception):
    """A fit's hard deadline passed before it finished one epoch: nothing to score."""


@dataclass
class LoopResult:
    history: dict[str, list[float]]
    best_epoch: int  # 1-based (0: no validation, nothing selected)
    epochs_run: int
    stopped_by_budget: bool
    resumed_from: int  # epochs already done by an interrupted earlier attempt
    seconds: float
    plan: dict  # budget plan: budgeted, max_epochs, epochs (planned), epoch_seconds, fold_seconds
    chosen_epoch: int = 0  # 1-based: the epoch whose weights the model holds (the last; the best under early stopping)


class Trainer:
    """Model, optimizer, LR schedule, the distributed train step and the callbacks of one fold.

    ``recipe``: the recipe's callbacks from ``spec`` (best weights, early stopping,
    plateau, snapshots, SWA, the EMA swap); off for a training that only needs its steps
    (the pre-flight checks). ``regularization=False`` trains with the forward pass in
    inference mode (no dropout, no augmentation) and without weight penalties or batch
    mixing. ``schedule`` replaces the LR schedule ``spec`` describes (a ``PlannedSchedule``
    of ``lr``)."""

    def __init__(self, strategy: tf.distribute.Strategy, build: Callable[[], keras.Model], task: Any,
                 spec: Any, lr: float, steps_per_epoch: int, mixer: Callable | None = None, *,
                 recipe: bool = True, regularization: bool = True, schedule: Any = None):
        from comp.training.averaging import RunningAverage, Snapshots, ema_momentum
        from comp.training.optimizers import build_optimizer, exclude_from_decay, layer_rates
        from comp.training.schedules import Plateau, PlannedSchedule

        self.strategy, self.task, self.spec = strategy, task, spec
        self.steps_per_epoch = steps_per_epoch
        self.regularization = regularization
        self.mixer = mixer if regularization else None
        with strategy.scope():
            self.model = build()
            self.schedule = schedule or PlannedSchedule(lr, spec.schedule, spec.epochs * steps_per_epoch,
                                                        warmup_steps=round(spec.warmup * steps_per_epoch))
            # train.ema evaluates (and keeps) the average; otherwise keep_ema only keeps one for the ensemble
            self.ema_momentum = (spec.ema or ema_momentum(spec.keep_ema, steps_per_epoch)) if recipe else 0.0
            self.optimizer = build_optimizer(spec.optimizer, self.schedule, weight_decay=spec.weight_decay,
                                             clip=spec.clip, ema=self.ema_momentum,
                                             rates=layer_rates(self.model, steps_per_epoch))
            exclude_from_decay(self.optimizer, self.model.trainable_variables)
            if keras.mixed_precision.global_policy().name == "mixed_float16":
                # float16 gradients underflow without loss scaling
                self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
            # Slot variables must exist before the replicated step is traced: created lazily
            # inside strategy.run they fail under MirroredStrategy.
            self.optimizer.build(self.model.trainable_variables)
        self.loss = task.loss(spec.loss, task.label_smoothing(spec.label_smoothing))  # auto: the kind's default
        objective = task.objective
        self.plan = BudgetPlan(math.inf, spec.epochs, self.schedule, steps_per_epoch)
        self.history = History()
        self.best = self.snapshots = self.swa = None
        self.before: list[Callback] = [self.history]  # run before the caller's callbacks
        self.after: list[Callback] = []  # ... and after them
        if recipe:
            if spec.schedule == "plateau":
                self.before.append(Plateau(self.schedule, objective))
            self.before.append(EarlyStopping(objective, spec.patience, active=self._early_stopping))
            self.best = BestWeights(objective, keep_best=self._early_stopping)
            self.snapshots = Snapshots(spec.snapshots, objective, len(self.model.variables),
                                       keep_best=self._early_stopping)
            self.swa = RunningAverage(spec.swa_epochs)
            self.after += [self.swa, self.best, self.snapshots]
            if spec.ema:
                self.after.append(EMASwap(self.optimizer))  # last: the others see the averaged weights
        self.initial_epoch = 0
        self.began = 0.0
        # Seconds the epoch just run spent tracing (its first steps and batches of each shape),
        # measured in a fit's first epoch only: BudgetPlan plans the later epochs without them.
        self.trace_seconds = 0.0
        self._timing = False
        self.stopped_by_budget = False
        self._train_step = None
        self._forward = make_forward(self.model)
        self.xla = use_xla(spec.xla, self.model)
        self._xla_proven = False

    def _early_stopping(self) -> bool:
        # only for schedules that do not end by themselves, and never against a budget plan
        return not self.plan.data["budgeted"] and self.spec.schedule in ("constant", "plateau")

    def stop(self, by_budget: bool = False) -> None:
        """End training after this epoch (a callback's request); ``by_budget``: the budget did."""
        self.model.stop_training = True
        self.stopped_by_budget |= by_budget

    # -- the distributed step --------------------------------------------------------------
    def _build_step(self, global_batch: int, seed: int) -> None:
        model, optimizer, loss_fn, strategy, task = self.model, self.optimizer, self.loss, self.strategy, self.task
        mixer, training = self.mixer, self.regularization

        def train_replica(x, y):
            if mixer is not None:
                # A stateless seed per step: the same mixes after a resume. The loss mixes
                # instead of the labels, so every task's targets work unchanged.
                step_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(optimizer.iterations, tf.int64)])
                x, partner, weight = mixer(x, step_seed)
            with tf.GradientTape() as tape:
                p = model(x, training=training)
                per_example = loss_fn(y, p)
                if mixer is not None:
                    per_example = weight * per_example + (1.0 - weight) * loss_fn(tf.gather(y, partner), p)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                if model.losses and training:
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

    def _train_epoch(self, batches, steps: int, callbacks: list, stop_at: float = math.inf, epoch: int = 0
                     ) -> tuple[float, float] | None:
        """``steps`` steps on the next batches of ``batches`` (from ``distribute``); None when
        the clock passed ``stop_at`` after the first step and before the last. A callback
        with a per-step hook gets each step's loss (read on the host) and may stop the epoch
        there (``model.stop_training``)."""
        # Sums stay on the device until the epoch ends: no host sync per step, unless asked.
        per_step = [c for c in callbacks if wants_batches(c)]
        totals = None
        times: list[float] = []
        for i in range(steps):
            t0 = clock.now() if self._timing else 0.0
            if i and stop_at < math.inf and clock.now() > stop_at:
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
            if self._timing:  # a host sync per step, in a fit's first epoch only
                out[0].numpy()
                times.append(clock.now() - t0)
                if len(times) in (EARLY_PLAN_STEPS, steps // 10):  # a first plan, then a surer one
                    self.plan.early(times, steps)
            if per_step:  # the step's mean loss, divided in float32 as tf.reduce_mean divides
                logs = {"loss": float(np.float32(out[0].numpy()) / np.float32(max(float(out[2]), 1.0)))}
                for c in per_step:
                    c.on_train_batch_end(i, logs)
                if self.model.stop_training:
                    break
            part = self.plan.steps_of(epoch)  # read each step: BudgetPlan.early may cut this epoch
            if part and i + 1 >= part:  # the planned part of a last epoch
                break
        loss, metric, count = (float(t) for t in totals)
        self.trace_seconds += tracing(times)
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

    # -- evaluation ------------------------------------------------------------------------
    def outputs(self, x: Any, batch_size: int) -> np.ndarray:
        """The model's outputs on ``x`` (inference mode), on the host."""
        outputs, times = [], []
        for b in batches(x, batch_size):
            t0 = clock.now() if self._timing else 0.0
            outputs.append(self._forward(b).numpy())
            if self._timing:
                times.append(clock.now() - t0)
        if self._timing:
            self.trace_seconds += tracing(times)
        return np.concatenate(outputs)

    def evaluate(self, x: Any, y: np.ndarray, batch_size: int) -> tuple[dict[str, float], np.ndarray]:
        """Validation loss, the device metric and the competition metric, and the outputs."""
        outputs = self.outputs(x, batch_size)
        loss = float(np.mean(np.asarray(self.loss(y, outputs))))
        metric = float(np.mean(np.asarray(self.task.batch_metric(y, outputs))))
        score = self.task.score(y, self.task.predictions(outputs))
        return {"val_loss": loss, f"val_{self.task.progress_metric}": metric, MONITOR: score}, outputs

    def _weights(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.model.variables]

    def weight_sets(self) -> tuple[dict[str, list[np.ndarray]], dict[str, dict]]:
        """The weights kept for the ensemble, each a full ``model.variables`` list: the top-k
        epochs (``snapshot_<rank>``), the SWA mean (``swa``) and the optimizer's EMA (``ema``).
        Averaged sets take their other variables (BatchNorm statistics) from the loaded
        weights: they need ``averaging.recalibrate_batchnorm`` before use."""
        from comp.training.optimizers import ema_values

        sets, info = {}, {}
        if self.snapshots is not None:
            for rank, (entry, weights) in enumerate(zip(self.snapshots.entries, self.snapshots.weights), start=1):
                sets[f"snapshot_{rank}"], info[f"snapshot_{rank}"] = weights, {"kind": "snapshot", **entry}
        position = {id(v): i for i, v in enumerate(self.model.variables)}
        trainable = [position[id(v)] for v in self.model.trainable_variables]

        def with_trainable(values) -> list[np.ndarray]:
            full = self._weights()
            for i, value in zip(trainable, values):
                full[i] = np.asarray(value, dtype=full[i].dtype)
            return full

        if self.swa is not None and self.swa.count:
            sets["swa"] = with_trainable(self.swa.mean)
            info["swa"] = {"kind": "average", "epochs": list(range(self.swa.first, self.swa.first + self.swa.count))}
        averaged = ema_values(self.optimizer)
        if averaged is not None:
            sets["ema"] = with_trainable(averaged)
            info["ema"] = {"kind": "average", "momentum": self.ema_momentum}
        return sets, info

    def state(self, callbacks: Iterable[Any], stopping):
        """The fold's resume state: the model's, optimizer's and schedule's variables, every
        named callback, and whether training stopped."""
        from comp.training.state import TrainingState, Variables

        variables = getattr(self.schedule, "variables", lambda: [])()
        parts = [Variables("model", self.model.variables), Variables("optimizer", self.optimizer.variables),
                 Variables("schedule", variables), *(c for c in callbacks if getattr(c, "name", None)), stopping]
        return TrainingState(parts)

    # -- the loop --------------------------------------------------------------------------
    def fit(self, train: tuple[Any, np.ndarray], val: tuple[Any, np.ndarray] | None = None, *,
            epochs: int, global_batch: int, seed: int, deadline: float = math.inf,
            hard_deadline: float = math.inf, state_dir: Path | None = None, is_chief: bool = True,
            callbacks: Iterable[keras.callbacks.Callback] = (), order: Order | None = None) -> LoopResult:
        """Train for at most ``epochs`` epochs; with the recipe's callbacks the last evaluated
        epoch's weights are loaded at the end (the best epoch's by the competition metric on
        ``val`` where early stopping runs: ``BestWeights``).

        With a finite ``deadline`` (a budget, on ``comp.clock``) training is planned, not cut
        (``BudgetPlan``); a decaying schedule (cosine, one-cycle, step) runs to its end; a
        constant or plateau one without a budget stops after ``spec.patience`` epochs without
        improvement. Without ``val`` there is no evaluation: the epochs only train.

        ``order``: the row positions of each epoch's batches (default: a permutation seeded
        by ``seed + epoch``). Past ``hard_deadline`` training stops inside the running epoch,
        which is dropped (the best of the finished ones stands); with none finished it raises
        ``OutOfTime``. Only on one worker: workers would have to agree on the step to stop at.
        """
        from comp.training.state import DamagedState, Record

        self.began = began = clock.now()
        self._build_step(global_batch, seed)
        self.plan.deadline = deadline
        self.plan.data.update(max_epochs=epochs, epochs=epochs, last_steps=0)
        self.plan.parts = worker_role()[1] == 1
        stopping = Record("stopping", stopped=False, stopped_by_budget=False)
        listed = [*self.before, *callbacks, self.plan, *self.after]
        for callback in listed:
            if isinstance(callback, Callback):
                callback.set_trainer(self)
            else:  # a plain Keras callback
                callback.set_model(self.model)
        state = self.state(listed, stopping)
        try:
            saved = state.restore(state_dir) if state_dir else None
        except DamagedState as exc:
            print(f"notice: {exc}; the fold starts again", flush=True)
            shutil.rmtree(state_dir, ignore_errors=True)
            saved = None
        start = self.initial_epoch = saved["epoch"] if saved else 0
        self.model.stop_training = stopping.data["stopped"]
        self.stopped_by_budget = stopping.data["stopped_by_budget"]
        order = order or shuffled(rows_of(train[0]), seed)
        train_batches = self.distribute(training_batches(device_data(train), order, global_batch,
                                                         range(start, epochs)))
        steps = math.ceil(epoch_length(order) / global_batch)  # what the data give (the schedule was told the same)
        stop_at = hard_deadline if worker_role()[1] == 1 else math.inf
        interrupted = False
        for callback in listed:
            callback.on_train_begin()

        for epoch in range(start, epochs):
            if self.model.stop_training or epoch >= self.plan.epochs:
                break
            # only a budgeted fit plans by epoch times (BudgetPlan): the others skip the syncs
            self._timing, self.trace_seconds = epoch == start and deadline < math.inf, 0.0
            for callback in listed:
                callback.on_epoch_begin(epoch)
            lr = float(self.schedule(self.optimizer.iterations))  # the LR this epoch starts with
            ran = stop_at == math.inf or clock.now() <= stop_at
            sums = self._train_epoch(train_batches, steps, listed, stop_at, epoch) if ran else None
            if sums is None:  # the hard deadline passed before or inside this epoch
                if epoch == 0:
                    raise OutOfTime(f"the deadline passed {clock.now() - began:.0f}s into the fit, before its "
                                    f"first epoch of {steps} steps finished")
                self.stop(by_budget=True)
                interrupted = ran  # some of this epoch's steps moved the weights
                break
            loss, metric = sums
            logs = {"loss": loss, self.task.progress_metric: metric}
            if val is not None:
                for callback in listed:
                    callback.on_test_begin()
                scores, _ = self.evaluate(val[0], val[1], global_batch)
                for callback in listed:
                    callback.on_test_end(scores)
                logs.update(scores)
            logs["lr"] = lr
            self._timing = False
            for callback in listed:
                callback.on_epoch_end(epoch, logs)
            stopping.data.update(stopped=bool(self.model.stop_training), stopped_by_budget=self.stopped_by_budget)
            if state_dir and is_chief:
                state.save(state_dir, epoch + 1)
            if self.model.stop_training:
                break

        for callback in listed:
            callback.on_train_end({"complete": not interrupted})
        history = self.history.data
        ran_epochs = len(history.get(MONITOR if val is not None else "loss", []))
        return LoopResult(history, self.best.epoch if self.best else 0, ran_epochs, self.stopped_by_budget,
                          start, clock.now() - began, dict(self.plan.data), self.best.chosen_epoch if self.best else 0)


def tracing(times: list[float]) -> float:
    """Of steps timed one by one, the seconds beyond the typical (median) step: what tracing
    (the first step, a batch of a new shape) added. Too few steps to tell: none."""
    if len(times) < 3:
        return 0.0
    return max(float(np.sum(times) - len(times) * np.median(times)), 0.0)
