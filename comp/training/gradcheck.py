"""Gradient check of a model plugin (docs/recipe.md 4): analytic vs numerical, in float64.

Relative error |a - n| / max(|a|, |n|) over a sample of weight entries: < 1e-7 is safe,
> 1e-2 is a bug, 1e-4..1e-2 is suspicious (a ReLU or max-pool kink crossed by the
finite difference can cause it).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from comp.training.sanity import FAIL, PASS, WARN, CheckResult

SAFE, BUG = 1e-7, 1e-2
# Central differences: truncation error ~h^2, round-off ~eps*|loss|/h. In float64, h=1e-5
# keeps both far below 1e-7 even for gradients near 1e-4; h=1e-6 already shows 1e-7.
STEP = 1e-5


@contextlib.contextmanager
def float64() -> Iterator[None]:
    """Build layers in float64 inside the block; the global floatx and policy come back after."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


@dataclass(frozen=True)
class Float64Task:
    """A 3-class stand-in for the classification task whose head computes in float64.

    The real head pins float32 (safe under mixed precision), which would drown a
    finite difference in rounding error; this one is the same Dense + softmax with
    the bias at log priors, in float64.
    """

    num_classes: int = 3
    kind: str = "classification"
    target: str = "label"

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(str(i) for i in range(self.num_classes))

    @property
    def priors(self) -> tuple[float, ...]:
        return (1.0 / self.num_classes,) * self.num_classes

    def head(self, features):
        bias = np.log(np.asarray(self.priors))
        return keras.layers.Dense(self.num_classes, activation="softmax", dtype="float64",
                                  bias_initializer=keras.initializers.Constant(bias),
                                  name="head")(features)

    def loss(self):
        return keras.losses.SparseCategoricalCrossentropy()


def check_gradients(model: keras.Model, x: np.ndarray, y: np.ndarray, loss_fn: Any, *,
                    entries: int = 20, h: float = STEP, seed: int = 0) -> CheckResult:
    """Compare tf.GradientTape gradients with central differences on ``entries`` weights.

    The forward pass runs with ``training=False`` (no dropout, no augmentation), so the
    loss is a deterministic function of the weights. Entries are spread round-robin over
    the trainable variables, preferring entries whose analytic gradient is non-zero (a
    dead ReLU's exact zero says nothing); a variable with no such entry is sampled as is.
    """
    x = tf.constant(x)
    y = tf.constant(y)
    variables = list(model.trainable_variables)
    if not variables:
        raise ValueError("the model has no trainable weights")
    for v in variables:
        if v.dtype != "float64":
            raise ValueError(f"weight {v.path} is {v.dtype}, not float64: build the model inside float64()")

    def loss() -> tf.Tensor:
        return loss_fn(y, model(x, training=False))

    with tf.GradientTape() as tape:
        value = loss()
    grads = [np.zeros(v.shape) if g is None else np.asarray(g)
             for g, v in zip(tape.gradient(value, variables), variables)]

    rng = np.random.default_rng(seed)
    picks: list[tuple[int, tuple[int, ...]]] = []
    pools = []
    for g in grads:
        flat = np.flatnonzero(g) if np.any(g) else np.arange(g.size)
        pools.append(list(rng.permutation(flat)))
    while len(picks) < entries and any(pools):
        for i, pool in enumerate(pools):
            if pool and len(picks) < entries:
                picks.append((i, np.unravel_index(pool.pop(), grads[i].shape)))

    rows = []
    for i, index in picks:
        var = variables[i]
        original = np.asarray(var).copy()
        plus, minus = original.copy(), original.copy()
        plus[index] += h
        minus[index] -= h
        var.assign(plus)
        up = float(loss())
        var.assign(minus)
        down = float(loss())
        var.assign(original)
        numerical = (up - down) / (2 * h)
        analytic = float(grads[i][index])
        scale = max(abs(analytic), abs(numerical), 1e-12)  # both ~0: no error to speak of
        rows.append({"weight": f"{var.path}{list(map(int, index))}", "analytic": analytic,
                     "numerical": numerical, "rel_error": abs(analytic - numerical) / scale})
    table = pd.DataFrame(rows)
    worst = table.loc[table["rel_error"].idxmax()]
    err = float(worst["rel_error"])
    numbers = {"max_rel_error": err, "median_rel_error": float(table["rel_error"].median()),
               "entries": int(len(table)), "worst_weight": str(worst["weight"]),
               "loss": float(value), "h": h}
    summary = (f"max relative error {err:.2e} (median {numbers['median_rel_error']:.2e}) over "
               f"{len(table)} weights of {len(variables)} tensors, float64, h={h:g}")
    if err < SAFE:
        return CheckResult("gradient check", PASS, summary, numbers)
    worst_note = (f"; worst {worst['weight']}: analytic {worst['analytic']:.9e} vs numerical "
                  f"{worst['numerical']:.9e}")
    if err > BUG:
        return CheckResult("gradient check", FAIL, summary + worst_note +
                           f"; > {BUG:g} means a wrong gradient: check custom layers and gradients", numbers)
    note = ("1e-4..1e-2 is suspicious; a ReLU or max-pool kink crossed by the finite difference "
            "can cause it" if err >= 1e-4 else "between safe (1e-7) and suspicious (1e-4)")
    return CheckResult("gradient check", WARN, f"{summary}{worst_note}; {note}", numbers)


def check_plugin(model_name: str, fixed_hp: dict[str, Any], *, examples: int = 4, entries: int = 20,
                 h: float = STEP, seed: int = 0, shape: tuple[int, int, int] = (8, 8, 1)) -> CheckResult:
    """Gradient-check model plugin ``model_name`` on a few random ``shape`` images, 3 classes."""
    from comp.api import InputSpec
    from comp.errors import PluginError
    from comp.training.model import build_model

    from comp.training.model import check_hyperparameters

    task = Float64Task()
    check_hyperparameters(model_name, "image", task, fixed_hp)
    keras.backend.clear_session()
    try:
        with float64():
            keras.utils.set_random_seed(seed)
            # build_model validates model.hp; the plugin's own model is its last layer,
            # taking float images in [0, 1] (the uint8 input and rescaling stay out).
            wrapper, _ = build_model(InputSpec(shape), task, model_name, fixed_hp, [])
            body = wrapper.layers[-1]
            pinned = [v for v in body.trainable_variables if v.dtype != "float64"]
            if pinned:
                raise PluginError(f"model plugin '{model_name}': weight {pinned[0].path} is {pinned[0].dtype}: "
                                  "a layer pins its dtype, so it cannot be gradient-checked in float64")
            rng = np.random.default_rng(seed)
            x = rng.random((examples, *shape))
            y = rng.integers(0, task.num_classes, size=examples)
            return check_gradients(body, x, y, task.loss(), entries=entries, h=h, seed=seed)
    finally:
        keras.backend.clear_session()
