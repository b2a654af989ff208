"""The parts of a fold's training, as callbacks the ``Trainer`` drives.

A callback has Keras's hooks (``keras.callbacks.Callback``: ``on_train_begin``,
``on_epoch_begin``, ``on_train_batch_end``, ``on_test_begin``, ``on_test_end``,
``on_epoch_end``, ``on_train_end``; ``self.model.stop_training = True`` ends training) and,
when its state must survive an interruption, a ``name`` and the resume state of
``comp.training.state``: ``get_state``/``set_state`` (JSON) and ``get_arrays``/``set_arrays``
(numpy). The Trainer saves every named callback with the model and the optimizer after each
epoch and restores them before ``on_train_begin``, so a resumed fold continues exactly.

``on_test_end`` receives the validation logs, the competition metric under ``MONITOR``;
it runs while the weights being evaluated are the model's (``EMASwap`` swaps the EMA of the
weights in for the evaluation and back after every other callback has seen them).

Written by hand because Keras's own callbacks serve ``model.fit`` and keep no resume state
(``BackupAndRestore`` cannot restore early stopping); the logic is Keras's, the state ours.
This module holds the generic ones; ``comp.training.averaging`` (snapshots, SWA),
``comp.training.schedules`` (plateau) and ``comp.training.diagnostics`` hold the others.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import keras
import numpy as np

from comp import clock
from comp.objective import Objective

MONITOR = "val_score"  # the competition metric on the validation rows
PLAN_MARGIN = 0.95  # a budget plan uses this share of the time left: epochs vary a little
# A first plan inside a fit's first epoch, from its first steps: an epoch is this many times
# its steps' time (the validation pass and the callbacks after them).
EARLY_EPOCH_FACTOR = 1.15
# A plan of fewer whole epochs than this ends with a part of one more where at least PART_EPOCH
# of an epoch fits: rounded down, a fold with 1.8 epochs' time ran 1 (4,000 256x256 digits at
# budget=5m beside a busy process: folds of 1, 1, 2, 2, 2 epochs scored 0.77, 0.34, 0.93-0.94).
SHORT_PLAN, PART_EPOCH = 4, 0.25


class Callback(keras.callbacks.Callback):
    """A part of training driven by the Trainer (see the module docstring). ``trainer`` is
    set before ``on_train_begin``; a callback whose number of arrays changes while it runs
    (kept weights) sets ``variable_arrays = True``."""

    name: str | None = None  # set: the callback's state is part of the fold's resume state
    variable_arrays = False

    def set_trainer(self, trainer: Any) -> None:
        self.trainer = trainer
        self.set_model(trainer.model)

    def get_state(self) -> dict:
        return {}

    def set_state(self, state: dict) -> None:
        pass

    def get_arrays(self) -> list[np.ndarray]:
        return []

    def set_arrays(self, arrays: list[np.ndarray]) -> None:
        pass


def wants_batches(callback: keras.callbacks.Callback) -> bool:
    """Whether ``callback`` has a per-step hook: the step's loss is then read on the host
    after every step (otherwise sums stay on the device until the epoch ends)."""
    return type(callback).on_train_batch_end is not keras.callbacks.Callback.on_train_batch_end


class History(Callback):
    """Every epoch's logs (loss, metrics, validation scores, LR), by key."""

    name = "history"

    def __init__(self):
        super().__init__()
        self.data: dict[str, list[float]] = {}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.data.setdefault(key, []).append(value)

    def get_state(self) -> dict:
        return dict(self.data)

    def set_state(self, state: dict) -> None:
        self.data = dict(state)


class BestWeights(Callback):
    """The weights a fold publishes, kept on the host and loaded into the model when training
    ends: the last evaluated epoch's, or, where early stopping runs (a schedule that does not
    decay to an end, no budget plan), the best epoch's by the competition metric.

    The last epoch of a schedule decayed to its end is chosen without the fold's labels, so
    its validation score is an honest OOF score; the best epoch is chosen on them and flatters
    it (docs/recipe.md 11). Both are tracked: the gap is recorded."""

    name = "best"
    variable_arrays = True  # none before the first epoch is scored

    def __init__(self, objective: Objective, keep_best: Callable[[], bool] = lambda: True):
        super().__init__()
        self.objective = objective
        self.keep_best = keep_best
        self.score: float | None = None  # the best epoch's
        self.epoch = 0
        self.last_score: float | None = None
        self.last_epoch = 0
        self.weights: list[np.ndarray] = []
        self._epoch = 0

    def offer(self, score: float, epoch: int, weights: Callable[[], list[np.ndarray]]) -> bool:
        """Note ``score`` of 1-based ``epoch``; keep ``weights()`` when they are the ones to
        publish (the last epoch's, or a new best). Returns whether it beat the best so far."""
        better = self.objective.better(score, self.score)
        if better:
            self.score, self.epoch = score, epoch
        self.last_score, self.last_epoch = score, epoch
        if better or not self.keep_best():
            self.weights = weights()
        return better

    @property
    def chosen_epoch(self) -> int:
        return self.epoch if self.keep_best() else self.last_epoch

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_test_end(self, logs=None):
        self.offer(logs[MONITOR], self._epoch + 1, lambda: [v.numpy() for v in self.model.variables])

    def on_train_end(self, logs=None):
        for var, value in zip(self.model.variables, self.weights):
            var.assign(value)

    def get_state(self) -> dict:
        return {"score": self.score, "epoch": self.epoch, "last_score": self.last_score, "last_epoch": self.last_epoch}

    def set_state(self, state: dict) -> None:
        self.score, self.epoch = state["score"], state["epoch"]
        self.last_score, self.last_epoch = state.get("last_score"), state.get("last_epoch", 0)

    def get_arrays(self) -> list[np.ndarray]:
        return self.weights

    def set_arrays(self, arrays: list[np.ndarray]) -> None:
        self.weights = list(arrays)


class EarlyStopping(Callback):
    """Stops after ``patience`` epochs without improvement of the competition metric, when
    ``active``: only schedules that do not end by themselves (constant, plateau) without a
    budget plan. A decaying schedule runs to its end: on the digits demo stopping a 40-epoch
    cosine schedule early (patience 10, at epoch ~20) gave OOF 0.9896, running it out 0.9937.
    The count of epochs without improvement is kept either way (a resumed fold continues it)."""

    name = "early_stopping"

    def __init__(self, objective: Objective, patience: int, active: Callable[[], bool]):
        super().__init__()
        self.objective, self.patience, self.active = objective, patience, active
        self.best: float | None = None
        self.wait = 0

    def on_epoch_end(self, epoch, logs=None):
        score = logs[MONITOR]
        if self.objective.better(score, self.best):
            self.best, self.wait = score, 0
        else:
            self.wait += 1
        if self.active() and self.wait >= self.patience:
            self.model.stop_training = True

    def get_state(self) -> dict:
        return {"best": self.best, "wait": self.wait}

    def set_state(self, state: dict) -> None:
        self.best, self.wait = state.get("best"), int(state.get("wait", 0))


class EMASwap(Callback):
    """Evaluates with the optimizer's EMA of the weights swapped in (``train.ema``), so epoch
    selection and the kept weights see the average; the raw weights go back for the next
    epoch (Keras's ``SwapEMAWeights`` idea, for this loop). Must come after every callback
    that reads the evaluated weights in ``on_test_end``."""

    def __init__(self, optimizer: Any):
        super().__init__()
        self.optimizer = optimizer
        self._raw: list[np.ndarray] | None = None

    def on_test_begin(self, logs=None):
        from comp.training.optimizers import ema_values

        averaged = ema_values(self.optimizer)
        self._raw = None
        if averaged is not None:
            self._raw = [v.numpy() for v in self.model.trainable_variables]
            for var, value in zip(self.model.trainable_variables, averaged):
                var.assign(value)

    def on_test_end(self, logs=None):
        if self._raw is not None:
            for var, value in zip(self.model.trainable_variables, self._raw):
                var.assign(value)
            self._raw = None


def plan_epochs(max_epochs: int, done: int, epoch_seconds: float, seconds_left: float,
                at_most: int | None = None) -> int:
    """Epochs a fold can run in all: those done plus what fits in ``PLAN_MARGIN`` of the
    seconds left, at least the ones done, at most ``max_epochs`` (and ``at_most``, once a plan
    may only shrink)."""
    fits = done + int(max(seconds_left, 0.0) * PLAN_MARGIN // max(epoch_seconds, 1e-9))
    epochs = max(done, min(max_epochs, fits))
    return min(epochs, at_most) if at_most is not None else epochs


class BudgetPlan(Callback):
    """With a finite ``deadline`` (a budget), training is planned, not cut: the first epochs
    are timed (the whole epoch: training, evaluation and the callbacks before this one) and
    the schedule is stretched or shrunk so that it ends, decayed, before the deadline. An
    epoch that would not fit even the shrunk plan is not started (``stopped_by_budget``).
    ``data`` is the plan kept in the fold's record: budgeted, max_epochs, epochs (planned),
    epoch_seconds, fold_seconds. Without a deadline it only holds ``epochs = max_epochs``."""

    name = "plan"

    def __init__(self, deadline: float, max_epochs: int, schedule: Any, steps_per_epoch: int):
        super().__init__()
        self.deadline, self.schedule, self.steps_per_epoch = deadline, schedule, steps_per_epoch
        self.data = {"budgeted": math.isfinite(deadline), "max_epochs": max_epochs, "epochs": max_epochs,
                     "epoch_seconds": None, "fold_seconds": None}
        self.timings: list[float] = []
        self._start = 0
        self.parts = True  # epochs may stop part-way (one worker: several must agree on every step)
        self._t0 = 0.0

    @property
    def epochs(self) -> int:
        return self.data["epochs"]

    def steps_of(self, epoch: int) -> int:
        """Steps epoch ``epoch`` runs: all of them (0), or the planned part of the last one."""
        return self.data.get("last_steps", 0) if epoch + 1 == self.data["epochs"] else 0

    def _fit(self, done: int, epoch_seconds: float, seconds_left: float, at_most: int | None = None) -> None:
        """Plan the epochs (those ``done`` and what fits ``seconds_left``) and the schedule's
        steps; a short plan ends with the part of an epoch that fits (``SHORT_PLAN``)."""
        epochs = plan_epochs(self.data["max_epochs"], done, epoch_seconds, seconds_left, at_most)
        part = max(seconds_left, 0.0) * PLAN_MARGIN / max(epoch_seconds, 1e-9) - (epochs - done)
        last = 0
        # Parts only on one worker: workers cut by their own clocks would wait on each other's steps
        if (self.parts and epochs < min(SHORT_PLAN, self.data["max_epochs"], at_most or SHORT_PLAN)
                and part >= PART_EPOCH):
            epochs, last = epochs + 1, max(1, int(min(part, 1.0) * self.steps_per_epoch))
        if last == self.steps_per_epoch:
            last = 0
        before = (self.data["epochs"], self.data.get("last_steps", 0))
        if at_most is not None and self._steps(epochs, last) > self._steps(*before):
            epochs, last = before  # settled: only ever shorter, a part epoch included
        if (epochs, last) != before or self.data["epoch_seconds"] is None:
            self._set(epochs, last)

    def _set(self, epochs: int, last: int) -> None:
        """The plan: ``epochs``, the last of them ``last`` steps (0: whole), and the schedule to match."""
        self.data.update(epochs=epochs, last_steps=last)
        self.schedule.plan(self._steps(epochs, last))

    def _steps(self, epochs: int, last: int) -> int:
        return (epochs - 1) * self.steps_per_epoch + (last or self.steps_per_epoch)

    def on_train_begin(self, logs=None):
        self.data["budgeted"] = math.isfinite(self.deadline)  # this attempt's budget, resumed or not
        self._start = self.trainer.initial_epoch
        if not self._start and self.data["budgeted"]:
            self.data["fold_seconds"] = max(round(self.deadline - self.trainer.began, 1), 0.0)  # past due: none
        self.timings = []

    def on_epoch_begin(self, epoch, logs=None):
        if self.data["budgeted"]:  # without a deadline there is nothing to time
            self._t0 = clock.now()

    def early(self, step_seconds: list[float], steps: int) -> None:
        """A first plan inside the first epoch, from its steps timed so far (the first, which
        traces, left out), so that a budget of one or two epochs warms up and decays within
        them (``PlannedSchedule.plan``) instead of spending the first one warming up. The
        epoch's end plans again from its whole time."""
        if not self.data["budgeted"] or self._start or len(step_seconds) < 3 or not self.parts:
            return
        raw = max(float(np.median(step_seconds[1:])), 1e-9)
        step = EARLY_EPOCH_FACTOR * raw
        left = self.deadline - self._t0  # from the epoch's start
        if step * steps > PLAN_MARGIN * left:
            # Not even one epoch fits (a fold's time on a slow or busy machine): the first epoch
            # stops after the steps that do, its schedule warmed up and decayed within them,
            # rather than overrunning the budget by the rest of the epoch. The validation pass
            # after it costs what it does for a whole epoch.
            after = (PLAN_MARGIN * (self.deadline - clock.now()) - (EARLY_EPOCH_FACTOR - 1) * raw * steps) / raw
            self._set(1, min(len(step_seconds) + max(1, int(max(after, 0.0))), steps))
            return
        self._fit(1, step * steps, left - step * steps)

    def on_epoch_end(self, epoch, logs=None):
        if not self.data["budgeted"]:
            return
        # A fit's first epoch traces the steps: planned by what a later epoch will take (the
        # trainer times the tracing apart), or it plans one epoch for a traced 4 s where a
        # later one takes 0.45 s (measured: digits, 1,149 rows). Resumed, its plan (which may
        # only shrink) still waits for the second; the check below stops an epoch that would not fit.
        spent = clock.now() - self._t0
        self.timings.append(max(spent - self.trainer.trace_seconds, 0.1 * spent) if not self.timings else spent)
        if self.steps_of(epoch):  # the planned part of a last epoch: the plan is done
            self.data["epoch_seconds"] = self.data["epoch_seconds"] or round(spent, 3)
            return
        if self.data["budgeted"] and not (self._start > 0 and len(self.timings) == 1):
            self._plan(epoch, settled=len(self.timings) > 2 or self._start > 0)
        upcoming = self.steps_of(epoch + 1) / self.steps_per_epoch or 1.0  # the next epoch's share of a whole one
        if (not self.model.stop_training and epoch + 1 < self.data["epochs"]
                and clock.now() + upcoming * self.timings[-1] > self.deadline):  # even the shrunk plan does not fit
            self.trainer.stop(by_budget=True)

    def _plan(self, epoch: int, settled: bool) -> None:
        """Fit the schedule into the time left, with a margin. After the first epoch from its
        time (tracing included, so on the safe side); after later ones from the mean of those
        after the first. Once ``settled`` (three epochs in, or resumed) only ever shorter: a
        schedule that stretched late would raise the LR again, one that shrinks a little just
        decays a little sooner."""
        timings = self.timings
        seconds = timings[0] if len(timings) == 1 else float(np.mean(timings[1:]))
        self._fit(epoch + 1, seconds, self.deadline - clock.now(), self.data["epochs"] if settled else None)
        self.data["epoch_seconds"] = round(seconds, 3)

    def get_state(self) -> dict:
        return dict(self.data)

    def set_state(self, state: dict) -> None:
        self.data = dict(state)
