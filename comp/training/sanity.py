"""Pre-flight sanity checks before the first fold (docs/recipe.md 3).

Each check is a pure function of a model factory and arrays; it returns a
:class:`CheckResult` (PASS / WARN / FAIL with its numbers) and never raises for a
failed check: a failure is information for the user, not a crash. The checks that train
(zero-input baseline, overfit one batch, LR range test) run on the folds' own ``Trainer``
(its steps only, none of the recipe's callbacks), so they work under every
tf.distribute strategy, several workers included.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from comp import clock as comp_clock
from comp.training.callbacks import Callback
from comp.training.inference import predict_outputs
from comp.training.spec import TrainSpec

tf.get_logger().setLevel("ERROR")  # model.predict on each fresh model of a check reports retracing
PASS, WARN, FAIL = "PASS", "WARN", "FAIL"

Builder = Callable[[], keras.Model]  # a fresh, uncompiled model on the competition's inputs

# How the checks train: Adam at a constant LR, nothing else of the recipe (no warmup, decay,
# weight decay, clipping, averaging or augmentation beyond what the model itself holds).
CHECK_SPEC = TrainSpec(optimizer="adam", schedule="constant", warmup=0.0, weight_decay=0.0, clip=0.0, ema=0.0,
                       snapshots=0, swa_epochs=0, keep_ema=0.0, label_smoothing=0.0, loss="auto", xla="off",
                       diagnostics=False)


@dataclass
class CheckResult:
    name: str
    status: str  # PASS | WARN | FAIL
    message: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return f"{self.status} {self.name}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mean_loss(model: keras.Model, x: Any, y: np.ndarray, task: Any, batch_size: int = 256) -> float:
    """Mean task loss of ``model`` (inference mode: no dropout, no augmentation)."""
    outputs = predict_outputs(model, x, batch_size)
    return float(np.mean(np.asarray(task.loss()(y, outputs))))


def mean_metric(model: keras.Model, x: Any, y: np.ndarray, task: Any, batch_size: int = 256) -> float:
    """Mean of the task's device metric (accuracy, exact match, MAE, ...)."""
    outputs = predict_outputs(model, x, batch_size)
    return float(np.mean(np.asarray(task.batch_metric(y, outputs))))


def check_initial_loss(model: keras.Model, x: Any, y: np.ndarray, task: Any) -> list[CheckResult]:
    """Untrained loss of each output head vs the loss of a model that predicts the priors.

    The heads start at the priors (class log-priors, label frequencies, the target mean),
    so the untrained model should score near that loss: -ln(1/C) for C balanced classes.
    Far off means a bug in the head, the labels or the input scaling.
    """
    actual = task.head_losses(y, predict_outputs(model, x))
    expected = task.head_losses(y, task.prior_outputs(len(y)))
    results = []
    for head, loss in actual.items():
        reference = expected[head]
        # Random weights spread the outputs around the bias: on the digits small_cnn starts
        # 3-27% above ln 10 depending on the seed. The bugs this check is for (bias, label
        # encoding, unscaled 0-255 inputs, missing softmax) give several times the expected
        # loss. The band scales with max(expected, ln 2) so that a tiny expected loss (very
        # imbalanced classes) does not turn ordinary init noise into a failure.
        deviation = abs(loss - reference) / max(reference, math.log(2))
        status = PASS if deviation <= 0.3 else WARN if deviation <= 1.0 else FAIL
        name = "initial loss" if len(actual) == 1 else f"initial loss ({head})"
        message = f"{loss:.3f} vs expected {reference:.3f} (a model predicting the priors), off by {deviation:.1%}"
        if status != PASS:
            message += "; check the head's bias init, the label encoding and the input scaling"
        results.append(CheckResult(name, status, message, {"loss": loss, "expected": reference,
                                                            "deviation": deviation, "head": head}))
    return results


def _trainer(build: Builder, task: Any, lr: float, steps_per_epoch: int, strategy=None, **options):
    """A ``Trainer`` for a check: ``CHECK_SPEC`` at ``lr``, under ``strategy`` (default: the
    current one), without the recipe's callbacks."""
    from comp.training.trainer import Trainer

    return Trainer(strategy or tf.distribute.get_strategy(), build, task, CHECK_SPEC, lr, steps_per_epoch,
                   recipe=False, **options)


def _replicas(strategy) -> int:
    return (strategy or tf.distribute.get_strategy()).num_replicas_in_sync


def step_seconds(ended: list[float]) -> float | None:
    """A typical step's seconds from the times successive steps ended: the median, which
    leaves out the first step's tracing and the odd stall (the sweep's mean over all its
    steps, tracing included, forecast street's epochs at 2.3x their real time)."""
    steps = np.diff(ended)
    return float(np.median(steps)) if len(steps) >= 5 else None


class _Steps(Callback):
    """Calls ``each(step, loss)`` after every training step; ``each`` returns True to stop."""

    def __init__(self, each: Callable[[int, float], bool]):
        super().__init__()
        self.each = each

    def on_train_batch_end(self, batch, logs=None):
        if self.each(batch, logs["loss"]):
            self.model.stop_training = True


def _inference_loss(model: keras.Model, x: Any, y: Any, loss_fn) -> float:
    """Mean loss of ``model`` on one batch in inference mode (the overfit check's number)."""
    return float(tf.reduce_mean(loss_fn(y, model(x, training=False))))


def check_input_independent(build: Builder, train: tuple[Any, np.ndarray], val: tuple[Any, np.ndarray],
                            blank: Callable[[Any], Any], *, task: Any, epochs: int, lr: float,
                            batch_size: int, seed: int, strategy=None) -> CheckResult:
    """Train the same model briefly on real and on blanked inputs; real must clearly win.

    A model that learns nothing from its inputs ends at the prior loss; if the real
    one is no better, the inputs do not reach the model or the labels do not match them.
    ``blank`` empties inputs (zero images, missing table values).
    """
    losses = {}
    global_batch = batch_size * _replicas(strategy)
    for kind in ("real", "zero"):
        keras.utils.set_random_seed(seed)  # same init and batch order for both
        x_train = train[0] if kind == "real" else blank(train[0])
        x_val = val[0] if kind == "real" else blank(val[0])
        trainer = _trainer(build, task, lr, math.ceil(len(train[1]) / global_batch), strategy)
        trainer.fit((x_train, train[1]), epochs=epochs, global_batch=global_batch, seed=seed)
        losses[kind] = mean_loss(trainer.model, x_val, val[1], task)
        losses[f"{kind}_{task.progress_metric}"] = mean_metric(trainer.model, x_val, val[1], task)
        del trainer
        keras.backend.clear_session()
    real, zero = losses["real"], losses["zero"]
    # "Clearly": at least 20% lower validation loss after the same few epochs.
    status = PASS if real < 0.8 * zero else WARN if real < zero else FAIL
    m = task.progress_metric
    message = (f"val loss {real:.3f} on real inputs vs {zero:.3f} on blanked inputs "
               f"({m} {losses['real_' + m]:.3f} vs {losses['zero_' + m]:.3f}) after {epochs} epoch(s)")
    if status != PASS:
        message += "; the model barely uses its inputs: check input loading and label alignment"
    return CheckResult("zero-input baseline", status, message, {**losses, "epochs": epochs})


def check_overfit_batch(build: Builder, x: Any, y: np.ndarray, *, task: Any, steps: int, lr: float,
                        seed: int, clock: Callable[[], float] | None = None, strategy=None) -> CheckResult:
    """Fit one small batch to ~zero loss with regularisation off.

    Regularisation off = the forward pass in inference mode (no dropout, no augmentation)
    and no weight penalties; a model that cannot memorise 20 examples has a bug. Its
    numbers include ``step_seconds``, the mean time of a step after the first (which
    traces), by ``clock``: None when it stopped after one step.
    """
    clock = clock or comp_clock.now
    keras.utils.set_random_seed(seed)
    trainer = _trainer(build, task, lr, steps, strategy, regularization=False)
    model, loss_fn = trainer.model, task.loss()
    x_t, y_t = tf.nest.map_structure(tf.constant, x), tf.constant(y)
    first = _inference_loss(model, x_t, y_t, loss_fn)
    watch = {"done": 0, "traced": None}

    def each(step: int, loss: float) -> bool:
        watch["done"] = step + 1
        if loss < 1e-3:  # memorised: no need to spend the remaining steps
            return True
        if step == 0:
            watch["traced"] = clock()
        return False

    # One epoch of ``steps`` steps, each on the whole batch in its order.
    n = len(y)
    trainer.fit((x, y), epochs=1, global_batch=n, seed=seed, callbacks=[_Steps(each)],
                order=lambda epoch: np.tile(np.arange(n), steps))
    done, traced = watch["done"], watch["traced"]
    step_seconds = (clock() - traced) / (done - 1) if traced is not None and done > 1 else None
    final = _inference_loss(model, x_t, y_t, loss_fn)
    metric = float(np.mean(np.asarray(task.batch_metric(y_t, model(x_t, training=False)))))
    del trainer, model
    keras.backend.clear_session()
    # 0.05 is "near zero" for cross-entropy (initial ~2.3 for 10 classes) and for the
    # standardised regression losses (initial ~1).
    memorised = final < 0.05 and (metric == 1.0 if task.progress_is_accuracy else True)
    status = PASS if memorised else WARN if final < 0.5 * first else FAIL
    message = (f"loss {first:.3f} -> {final:.4f} on {len(y)} examples in {done} steps "
               f"({task.progress_metric} {metric:.2f}, regularisation off)")
    if status != PASS:
        message += "; the model cannot memorise a tiny batch: check the model, the loss and the LR"
    return CheckResult("overfit one batch", status, message,
                       {"initial_loss": first, "loss": final, task.progress_metric: metric, "steps": done,
                        "examples": int(len(y)), "step_seconds": step_seconds})


def sweep_lrs(lr_min: float, lr_max: float, steps: int) -> np.ndarray:
    """The LR range test's LRs: ``steps`` of them growing exponentially from ``lr_min`` to ``lr_max``."""
    return lr_min * (lr_max / lr_min) ** (np.arange(steps) / max(steps - 1, 1))


def lr_range_test(build: Builder, x: Any, y: np.ndarray, *, task: Any, lr_min: float, lr_max: float,
                  steps: int, batch_size: int, seed: int, strategy=None) -> tuple[CheckResult, pd.DataFrame]:
    """Train with the LR growing exponentially from ``lr_min`` to ``lr_max``, one LR per step.

    Stops early once the running loss exceeds 4x its minimum (diverged). Returns the
    result (with ``suggested_lr`` in its numbers, None when nothing trained) and the sweep.
    """
    from comp.training.schedules import TableSchedule

    lrs = sweep_lrs(lr_min, lr_max, steps)
    global_batch = batch_size * _replicas(strategy)
    keras.utils.set_random_seed(seed)
    trainer = _trainer(build, task, lr_min, steps, strategy, schedule=TableSchedule(lrs))  # real training: dropout on
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(y)) for _ in range(steps * global_batch // len(y) + 1)])
    rows, running, ended = [], {"avg": 0.0, "best": math.inf}, []

    def each(i: int, value: float) -> bool:
        ended.append(time.perf_counter())
        if not math.isfinite(value):
            return True
        rows.append((i, float(lrs[i]), value))
        # A bias-corrected running mean decides when to stop: it lags, which only costs steps.
        running["avg"] = 0.9 * running["avg"] + 0.1 * value
        smoothed = running["avg"] / (1 - 0.9 ** (i + 1))
        running["best"] = min(running["best"], smoothed)
        return i > steps // 10 and smoothed > 4 * running["best"]

    trainer.fit((x, y), epochs=1, global_batch=global_batch, seed=seed, callbacks=[_Steps(each)],
                order=lambda epoch: order[:steps * global_batch])
    del trainer
    keras.backend.clear_session()
    sweep = pd.DataFrame(rows, columns=["step", "lr", "loss"])
    # A centred moving mean (5% of the sweep) does not shift the curve to higher LRs
    # the way a running mean does, so the suggestion lands where the loss really falls.
    window = max(5, steps // 20)
    sweep["smoothed_loss"] = sweep["loss"].rolling(window, center=True, min_periods=1).mean()
    suggested = suggest_lr(sweep["lr"].to_numpy(), sweep["smoothed_loss"].to_numpy(), window // 2)
    start = float(sweep["smoothed_loss"].iloc[0]) if len(sweep) else math.nan
    low = float(sweep["smoothed_loss"].min()) if len(sweep) else math.nan
    drop = 1 - low / start if len(sweep) else 0.0
    # Under 5% the curve is flat: its "steepest" point is noise, so no LR is suggested
    # (train.lr=auto then refuses). Under 20% the suggestion is kept but doubtful.
    if suggested is not None and drop >= 0.05:
        suggested = float(np.clip(suggested, lr_min, lr_max))
    else:
        suggested = None
    numbers = {"suggested_lr": suggested, "lr_min": lr_min, "lr_max": lr_max,
               "steepest_lr": steepest_lr(sweep["lr"].to_numpy(), sweep["smoothed_loss"].to_numpy(), window // 2),
               "steps": int(len(sweep)), "start_loss": start, "min_loss": low, "drop": drop,
               "min_loss_lr": float(sweep["lr"].iloc[int(sweep["smoothed_loss"].argmin())]) if len(sweep) else None,
               "step_seconds": step_seconds(ended)}
    if suggested is None:
        return CheckResult("LR range test", FAIL,
                           f"the loss did not fall between LR {lr_min:g} and {lr_max:g} "
                           f"({start:.3f} -> min {low:.3f} in {len(sweep)} steps); no LR to suggest: "
                           "check the model and the data", numbers), sweep
    status = PASS if drop >= 0.2 else WARN
    message = (f"suggested LR {suggested:.2e} (a third of the LR at the smoothed loss's minimum); "
               f"loss {start:.3f} -> min {low:.3f} at LR {numbers['min_loss_lr']:.2e}, "
               f"{len(sweep)} steps from {lr_min:g} to {lr_max:g}")
    if status == WARN:
        message += "; the loss fell by less than 20%, so the suggestion is a rough guess"
    return CheckResult("LR range test", status, message, numbers), sweep


SUGGESTED_FRACTION = 1 / 3  # of the LR at the smoothed loss's minimum (see suggest_lr)


def suggest_lr(lrs: np.ndarray, smoothed: np.ndarray, edge: int = 2) -> float | None:
    """The peak LR for a decaying schedule: a third of the LR at the smoothed loss's minimum.

    Smith's rule for one-cycle schedules (fastai's ``minimum / 10``): the minimum sits at
    the edge of divergence, a fraction of it still trains fast while warmup and decay take
    care of the rest. Where the minimum falls depends on how slowly the LR grows (the model
    learns on the way), and this sweep grows slowly (40 steps a decade by default, fastai's
    12.5), which puts its minimum about 3x lower; hence a third. Measured with the default
    sweep under a budget: a tenth (mnist5k 1.1e-3, the street demo 1.9e-3, digits 1.6e-3)
    against three times it gave OOF 0.9828 vs 0.9873 on mnist5k at budget=5m, 0.818 vs
    0.847 exact match on the street demo and 0.9924 vs 0.9917 on digits at 2m. The older
    "steepest descent" pick (Smith 2017; fastai's ``steep``) trained mnist5k to 0.957
    where 3e-3 reached 0.976. ``edge`` points at the start are skipped (the smoothing
    window is cut there). None when the loss never fell.
    """
    if len(lrs) < 2 * edge + 3:
        return None
    end = int(np.argmin(smoothed))
    if end <= edge + 1 or smoothed[end] >= smoothed[edge]:
        return None
    return float(lrs[end]) * SUGGESTED_FRACTION


def steepest_lr(lrs: np.ndarray, smoothed: np.ndarray, edge: int = 2) -> float | None:
    """The LR where the smoothed loss falls fastest against log(LR), before its minimum."""
    end = int(np.argmin(smoothed)) if len(lrs) else 0
    if end <= edge + 1:
        return None
    slope = np.gradient(smoothed[edge:end + 1], np.log10(lrs[edge:end + 1]))
    return float(lrs[edge + int(np.argmin(slope))])


def plot_lr_range(sweep: pd.DataFrame, suggested: float | None, path: Path) -> None:
    """Loss and smoothed loss vs LR on a log axis, the suggested LR marked."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; set before pyplot is imported
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sweep["lr"], sweep["loss"], alpha=0.3, label="loss")
    ax.plot(sweep["lr"], sweep["smoothed_loss"], label="smoothed")
    if suggested:
        ax.axvline(suggested, color="red", linestyle="--", label=f"suggested {suggested:.1e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("LR range test")
    if len(sweep):
        ax.set_ylim(top=float(min(sweep["loss"].max(), 2 * sweep["smoothed_loss"].iloc[0])))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
