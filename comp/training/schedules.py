"""Learning-rate schedules whose length can be planned after training has started.

``PlannedSchedule`` is a Keras ``LearningRateSchedule`` of the optimizer's step: a linear
warmup, then a shape (constant, cosine, one-cycle, step) over ``total_steps``, times a
``scale`` that reduce-on-plateau lowers. ``total_steps`` and ``scale`` are variables, so a
budget plan made after the first epoch (docs/recipe.md 5; Li et al., "Budgeted Training",
ICLR 2020: a schedule that decays to its end inside the budget beats a truncated one)
changes the schedule without rebuilding the optimizer, and both are saved with the
resume state, so a resumed fold continues on the same curve.

Keras has CosineDecay with warmup but no one-cycle, no planned length and no plateau
scale in one schedule; this is that, in a few lines.
"""
from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from comp.objective import Objective
from comp.training.callbacks import MONITOR, Callback

SHAPES = ("constant", "cosine", "onecycle", "step", "plateau")
STEP_FACTOR = 0.1  # step: the LR drops 10x at 50% and again at 75% of training
FINAL_FRACTION = 0.01  # cosine and one-cycle end at 1% of the peak LR
# A planned schedule warms up for at most this share of its steps: a budget that fits one
# epoch a fold once spent it all warming up (train.warmup=1) and ended at the peak LR, never
# decayed (4,000 256x256 digits at budget=2m: 0.51 OOF accuracy).
WARMUP_SHARE = 0.2


class PlannedSchedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, peak: float, shape: str, total_steps: int, warmup_steps: int = 0):
        if shape not in SHAPES:
            raise ValueError(f"schedule {shape!r}: use one of {', '.join(SHAPES)}")
        self.peak, self.shape = float(peak), shape
        self.warmup_steps = int(warmup_steps)  # as asked (train.warmup); a plan may shorten it
        with tf.init_scope():  # variables, not constants: the plan and plateau change them
            self.total_steps = tf.Variable(max(int(total_steps), 1), dtype=tf.int64, trainable=False,
                                           name="schedule_total_steps")
            self.scale = tf.Variable(1.0, dtype=tf.float32, trainable=False, name="schedule_scale")
            self.warmup = tf.Variable(self.warmup_steps, dtype=tf.int64, trainable=False, name="schedule_warmup")

    def variables(self) -> list[tf.Variable]:
        return [self.total_steps, self.scale, self.warmup]

    def plan(self, total_steps: int) -> None:
        """The schedule ends after ``total_steps``; its warmup is at most ``WARMUP_SHARE`` of them."""
        warmup = min(self.warmup_steps, round(WARMUP_SHARE * int(total_steps))) if self.warmup_steps else 0
        self.warmup.assign(max(warmup, 1) if self.warmup_steps else 0)
        self.total_steps.assign(max(int(total_steps), int(self.warmup.numpy()) + 1))

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        total = tf.cast(self.total_steps, tf.float32)
        warmup = tf.cast(self.warmup, tf.float32)
        # Progress through the post-warmup part, in [0, 1].
        t = tf.clip_by_value((step - warmup) / tf.maximum(total - warmup, 1.0), 0.0, 1.0)
        if self.shape == "cosine":
            shaped = FINAL_FRACTION + (1 - FINAL_FRACTION) * 0.5 * (1 + tf.cos(math.pi * t))
        elif self.shape == "onecycle":
            # Linear up to the peak at 30%, cosine down to the floor (Smith & Topin 2019).
            up = tf.minimum(t / 0.3, 1.0)
            down = FINAL_FRACTION + (1 - FINAL_FRACTION) * 0.5 * (1 + tf.cos(math.pi * tf.maximum(t - 0.3, 0) / 0.7))
            shaped = tf.where(t < 0.3, 0.1 + 0.9 * up, down)
        elif self.shape == "step":
            shaped = tf.where(t < 0.5, 1.0, tf.where(t < 0.75, STEP_FACTOR, STEP_FACTOR ** 2))
        else:  # constant, plateau (plateau only moves the scale)
            shaped = tf.constant(1.0)
        ramp = tf.minimum((step + 1.0) / tf.maximum(warmup, 1.0), 1.0) if self.warmup_steps else tf.constant(1.0)
        return self.peak * self.scale * ramp * shaped

    def get_config(self):
        return {"peak": self.peak, "shape": self.shape, "total_steps": int(self.total_steps.numpy()),
                "warmup_steps": self.warmup_steps}


class TableSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """One LR per optimizer step from a table (the LR range test's sweep): the LRs are the
    table's float32 values exactly; steps past its end keep the last."""

    def __init__(self, lrs):
        self.lrs = np.asarray(lrs, dtype=np.float32)

    def variables(self) -> list[tf.Variable]:
        return []

    def plan(self, total_steps: int) -> None:
        pass  # the table is the plan

    def __call__(self, step):
        index = tf.minimum(tf.cast(step, tf.int32), len(self.lrs) - 1)
        return tf.gather(tf.constant(self.lrs), index)

    def get_config(self):
        return {"lrs": self.lrs.tolist()}


class Plateau(Callback):
    """Reduce on plateau: after ``patience`` epochs without improvement of the competition
    metric, the schedule's scale is multiplied by ``factor``. Its counters are its state."""

    name = "plateau"

    def __init__(self, schedule: PlannedSchedule, objective: Objective, patience: int = 3, factor: float = 0.5):
        super().__init__()
        self.schedule, self.objective = schedule, objective
        self.patience, self.factor = patience, factor
        self.best: float | None = None
        self.wait = 0

    def on_epoch_end(self, epoch, logs=None) -> None:
        score = logs[MONITOR]
        if self.objective.better(score, self.best):
            self.best, self.wait = score, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.schedule.scale.assign(self.schedule.scale * self.factor)
            self.wait = 0

    def get_state(self) -> dict:
        return {"best": self.best, "wait": self.wait}

    def set_state(self, state: dict) -> None:
        self.best, self.wait = state["best"], state["wait"]

    def get_arrays(self) -> list:
        return []  # the scale it lowers is the schedule's variable, saved with the schedule

    def set_arrays(self, arrays: list) -> None:
        pass
