"""Watch training, not just the final number (docs/recipe.md 4).

``Diagnostics`` is a callback of one fold's ``Trainer``. After every epoch it records
the loop's numbers (train/val loss and accuracy, LR). On probed epochs it adds, on one
fixed probe batch of training rows (256), the global gradient norm, the update/weight
ratio of every kernel, the activation variance and dead-ReLU fraction of every ReLU layer
(nested models included) and the probe's own loss and accuracy in inference mode.
The rows go to ``diagnostics.csv`` (rewritten after each epoch, so a resumed fold keeps
its earlier epochs; ``probed`` says which rows carry the probe's columns) and to
TensorBoard event files in ``tensorboard/``; after training, ``finish`` draws
``learning_curve.png``, turns the rows into verdicts (``diagnose``) and writes them with
the BatchNorm momentum used to ``diagnostics.json``. Only the chief writes; other workers
do nothing.

Choices:
- Which epochs are probed (``probe_every``): ``auto`` probes the first epoch and the last,
  and in between whenever the diagnostics' own time so far (probe, CSV, TensorBoard),
  with one more probe, stays within ``SHARE`` of the training time so far: every epoch
  when epochs are long, a few per fold when an epoch takes half a second (where a probe and
  its one-off tracing would otherwise cost a fifth of training: measured on the digits demo,
  benchmarks/loop_overhead.py). An integer N probes every N-th epoch (1: all) and the last.
- The probe pass runs with ``training=False``, in its own tf.function outside the
  distributed step: in training mode BatchNorm would update its moving statistics and
  Dropout would advance its RNG state, so the diagnostics would change the training
  they watch (they do not: the same run with ``train.diagnostics=false`` gives the same
  numbers). Gradients are those of the data loss (no weight penalties), no dropout.
- BatchNorm lag is told apart from a preprocessing mismatch by the probe: its rows are
  training rows, so in inference mode they should score at least the epoch's running
  training accuracy; far less means the inference path itself is off (moving
  statistics), while a good probe with validation at chance points at the data.
- Update/weight ratio of a kernel: ``||W_end - W_start|| / ||W_start||`` over the probed
  epoch (its start is kept on the device every epoch, so any epoch can be probed),
  divided by the steps per epoch: the mean per-step ratio when the steps point the same
  way, a lower bound of it otherwise. Healthy: ~1e-3. Biases and BatchNorm's gamma/beta
  are left out (a bias starts at zero).
- A ReLU unit (a channel: the last axis) is dead when it is zero for every probe row
  and position. Activation variance is over all elements of the layer's output.
- When nothing is wrong the verdict list is ``["no problems seen"]``, printed like any
  other verdict, so the log shows that the diagnostics ran.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from comp import clock
from comp.files import atomic_path, write_csv, write_json
from comp.training.batchnorm import auto_momentum, batchnorm_layers
from comp.training.callbacks import Callback
from comp.training.feeding import select
from comp.training.strategy import worker_role
from comp.training.verdicts import (COLLAPSE, DEAD, GAP, GAP_EPOCHS, GRAD_GROWTH, GRAD_HUGE, GRAD_TINY,
                                    IMPROVING_EPOCHS, IMPROVING_GAIN, INFERENCE_GAP, RATIO_HIGH, RATIO_LOW,
                                    diagnose)

CSV = "diagnostics.csv"
JSON = "diagnostics.json"
CURVE = "learning_curve.png"
TENSORBOARD = "tensorboard"
PROBE_ROWS = 256
PROBE_CHUNK_BYTES = 2 ** 20  # probe chunks: the training batch, or more rows while their input stays below this
EAGER_PROBES = 2  # the first probes of a fold run eagerly: tracing the probe costs ~5 eager passes (digits)
SHARE = 0.02  # probe_every=auto: the diagnostics' share of training time (besides the first and last probes)


LOG_KEYS = ("loss", "val_loss", "val_score", "lr")


def probe_rows(rows: np.ndarray, size: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """A fixed random sample of ``size`` of ``rows`` (training rows), in their original order."""
    return np.sort(np.random.default_rng(seed).choice(rows, size=min(size, len(rows)), replace=False))


# -- activations of ReLU layers, nested models included ---------------------------------------
def _is_relu(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, keras.layers.ReLU):
        return True
    return getattr(getattr(layer, "activation", None), "__name__", None) == "relu"


class _Taps:
    """A sub-model of one functional model returning its ReLU layers' outputs and the
    inputs of the functional models nested in it, which get taps of their own."""

    def __init__(self, model: keras.Model):
        outputs, self.entries = [], []  # entries: ("relu", name) or ("nested", _Taps)
        for layer in model.layers:
            if _is_relu(layer):
                outputs.append(layer.output)
                self.entries.append(("relu", layer.name))
            elif isinstance(layer, keras.Model) and getattr(layer, "inputs", None):
                # The tensor(s) feeding the nested model in this model's graph; Keras has no
                # public accessor (``layer.input`` is the nested model's own Input).
                # The call's first argument keeps its structure (a tensor, a list or a dict).
                feed = layer._inbound_nodes[0].arguments.args[0]
                child = _Taps(layer)
                if child.entries:
                    outputs.append(feed)
                    self.entries.append(("nested", child))
        self.fn = keras.Model(model.input, outputs) if outputs else None  # model.input: the input structure

    def names(self) -> list[str]:
        out = []
        for kind, item in self.entries:
            out.extend([item] if kind == "relu" else item.names())
        return out

    def run(self, x) -> Iterable[tuple[str, np.ndarray]]:
        if self.fn is None:
            return
        values = self.fn(x, training=False)
        values = values if isinstance(values, (list, tuple)) else [values]
        for (kind, item), value in zip(self.entries, values):
            if kind == "relu":
                yield item, value
            else:
                yield from item.run(value)


class _ActivationStats:
    """Running sum, sum of squares, count and ever-active channels of each ReLU layer."""

    def __init__(self):
        self.sum, self.sumsq, self.count, self.alive = {}, {}, {}, {}

    def add(self, name: str, total: float, total_sq: float, count: float, fires: np.ndarray) -> None:
        self.sum[name] = self.sum.get(name, 0.0) + total
        self.sumsq[name] = self.sumsq.get(name, 0.0) + total_sq
        self.count[name] = self.count.get(name, 0.0) + count
        self.alive[name] = fires | self.alive[name] if name in self.alive else fires

    def variance(self, name: str) -> float:
        mean = self.sum[name] / self.count[name]
        return float(max(self.sumsq[name] / self.count[name] - mean * mean, 0.0))

    def dead(self, name: str) -> float:
        return float(1.0 - self.alive[name].mean())


def _summarise(a) -> list:
    """(sum, sum of squares, count, channel fired anywhere) of one activation tensor."""
    a = tf.cast(a, tf.float32)
    return [tf.reduce_sum(a), tf.reduce_sum(tf.square(a)), tf.cast(tf.size(a), tf.float32),
            tf.reduce_any(tf.reshape(a > 0, [-1, tf.shape(a)[-1]]), axis=0)]


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


# -- the hook --------------------------------------------------------------------------------
HISTOGRAM_EVERY = 5  # epochs at least between TensorBoard's per-layer weight and gradient histograms (and at the end)


class Diagnostics(Callback):
    """Per-epoch diagnostics of one fold, a callback of its ``Trainer`` (it keeps its rows in
    ``diagnostics.csv``, not in the resume state). ``probe_every``: ``"auto"`` or every N
    epochs (see the module docstring)."""

    def __init__(self, fold_dir: Path, task: Any, probe: tuple[np.ndarray, np.ndarray], *,
                 batch_size: int = 256, bn_setting: Any = None, title: str = "",
                 is_chief: bool | None = None, probe_every: int | str = "auto"):
        super().__init__()
        self.fold_dir = Path(fold_dir)
        self.task = task
        self.probe = probe
        self.batch_size = max(1, int(batch_size))
        self.bn_setting = bn_setting
        self.title = title
        self.probe_every = probe_every if probe_every == "auto" else max(1, int(probe_every))
        self.active = worker_role()[0] == 0 if is_chief is None else is_chief
        self.rows: dict[int, dict[str, float]] = {}
        self.steps_per_epoch = 0
        self.kernels: list[tf.Variable] = []
        self.kernel_names: list[str] = []
        self.taps: _Taps | None = None
        self.taps_error: str | None = None
        self.relu_names: list[str] = []
        self.batchnorm: dict[str, Any] = {}
        self._start: list[tf.Tensor] = []  # kernels at the start of the running epoch
        self._last_start: list[tf.Tensor] = []  # ... and of the epoch before (for the final probe)
        self._last_epoch: int | None = None  # the last epoch this attempt ran (0-based)
        self._last_histogram: int | None = None
        self._last_probed: int | None = None  # epochs are 0-based here
        self._histograms: list[tuple[str, np.ndarray, np.ndarray]] = []
        self._began = 0.0
        self._spent = 0.0  # seconds the diagnostics took this attempt
        self._probe_seconds = 0.0  # the last probe's
        self._probes = 0  # this attempt's
        self._probe_step = None
        self._writer = None

    # hooks ------------------------------------------------------------------------------------
    def on_train_begin(self, logs=None) -> None:
        if not self.active:
            return
        self._began = clock.now()
        model = self.model
        steps_per_epoch = self.steps_per_epoch = int(self.trainer.steps_per_epoch)
        self.kernels = [v for v in model.trainable_variables if len(v.shape) >= 2]
        self.kernel_names = _unique([_layer_name(v) for v in self.kernels])
        self._start = self._snapshot()
        try:
            self.taps = _Taps(model)
        except Exception as exc:  # an exotic model: the other diagnostics still run
            self.taps, self.taps_error = None, f"{type(exc).__name__}: {exc}"
        self.relu_names = _unique(self.taps.names()) if self.taps is not None else []
        self._probe_step = self._make_probe_step()
        momenta = sorted({float(layer.momentum) for layer in batchnorm_layers(model)})
        self.batchnorm = {"layers": len(list(batchnorm_layers(model))), "momentum": momenta,
                          "setting": self.bn_setting, "auto_momentum": auto_momentum(steps_per_epoch)}
        csv = self.fold_dir / CSV
        if csv.is_file():  # a resumed fold: keep the epochs recorded before the interruption
            for row in pd.read_csv(csv).to_dict("records"):
                self.rows[int(row["epoch"])] = row
        self.fold_dir.mkdir(parents=True, exist_ok=True)
        self._writer = tf.summary.create_file_writer(str(self.fold_dir / TENSORBOARD))
        self._spent += clock.now() - self._began

    def on_epoch_end(self, epoch, logs=None) -> None:
        if not self.active or self.model is None:
            return
        began = clock.now()
        probed = self._due(epoch, began)
        row: dict[str, float] = {"epoch": epoch + 1}
        row.update({k: float(logs[k]) for k in LOG_KEYS if k in logs})
        row.update({k: float(v) for k, v in logs.items() if k not in row and isinstance(v, (int, float))})
        row["probed"] = float(probed)
        if probed:
            row.update(self._measure(self._start))
            self._last_probed = epoch
        self.rows = {e: r for e, r in self.rows.items() if e < epoch + 1}
        self.rows[epoch + 1] = row
        self._last_epoch, self._last_start, self._start = epoch, self._start, self._snapshot()
        self._write(row, histograms=probed and self._histogram_due(epoch), keys=row)
        self._spent += clock.now() - began

    def on_train_end(self, logs=None) -> None:
        """Probe the last epoch if it was not (its weights are still the model's, unless
        training stopped inside the epoch after it: ``logs["complete"]`` False)."""
        complete = (logs or {}).get("complete", True)
        if not self.active or self.model is None or self._last_epoch is None:
            return
        row = self.rows[self._last_epoch + 1]
        if row.get("probed") or not complete:
            if self._histograms and self._last_histogram != self._last_probed:
                self._write_histograms(self._last_probed)
            return
        measured = self._measure(self._last_start)
        row.update(measured, probed=1.0)
        self._write(row, histograms=True, keys=measured)

    def _due(self, epoch: int, now: float) -> bool:
        """Probe this epoch? (see ``probe_every`` in the module docstring)"""
        if self._last_epoch is None:  # the first epoch of this attempt
            return True
        if self.probe_every != "auto":
            return epoch % self.probe_every == 0
        training = now - self._began - self._spent
        return self._spent + self._probe_seconds <= SHARE * training

    def _histogram_due(self, epoch: int) -> bool:
        # Histograms cost more than scalars; not at the first probe (the last one always has them).
        last = self._last_histogram if self._last_histogram is not None else 0
        return epoch - last >= HISTOGRAM_EVERY

    def _snapshot(self) -> list[tf.Tensor]:
        # On the device: a copy of each kernel, no transfer to the host.
        return [tf.identity(v) for v in self.kernels]

    def _write(self, row: dict[str, float], histograms: bool, keys: Iterable[str]) -> None:
        """The CSV, and TensorBoard's scalars of ``keys`` (of ``row``) and maybe histograms."""
        epoch = int(row["epoch"])
        write_csv(self.fold_dir / CSV, self.frame())
        with self._writer.as_default(step=epoch):
            for key in keys:
                if key not in ("epoch", "probed"):
                    tf.summary.scalar(_tb_name(key, self.task.progress_metric), row[key])
        if histograms:
            self._write_histograms(epoch - 1)
        self._writer.flush()

    def _write_histograms(self, epoch: int) -> None:
        with self._writer.as_default(step=epoch + 1):
            for name, weights, grads in self._histograms:
                tf.summary.histogram(f"weights/{name}", weights)
                tf.summary.histogram(f"gradients/{name}", grads)
        self._writer.flush()
        self._last_histogram = epoch

    def _make_probe_step(self):
        """One probe chunk -> loss sum, correct count, gradients, ReLU summaries (traced once)."""
        model, taps, variables, task = self.model, self.taps, self.model.trainable_variables, self.task
        loss_fn = task.loss()

        @tf.function(reduce_retracing=True)
        def step(xb, yb):
            # Inference mode on purpose: see the module docstring.
            with tf.GradientTape() as tape:
                p = model(xb, training=False)
                loss = tf.reduce_sum(tf.cast(loss_fn(yb, p), tf.float32))
            grads = tape.gradient(loss, variables)
            grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, variables)]
            hits = tf.reduce_sum(task.batch_metric(yb, p))
            acts = [_summarise(a) for _, a in taps.run(xb)] if taps is not None else []
            return loss, hits, grads, acts

        return step

    def _chunk_rows(self) -> int:
        """The training batch bounds the rows one pass may hold (activations, gradients); tiny
        inputs go in larger chunks (fewer passes), up to the whole probe."""
        x = self.probe[0]
        leaves = x.values() if isinstance(x, dict) else [x]
        row_bytes = sum(int(np.prod(v.shape[1:], dtype=np.int64)) * v.dtype.itemsize for v in leaves)
        return max(self.batch_size, min(PROBE_ROWS, PROBE_CHUNK_BYTES // max(row_bytes, 1)))

    def _measure(self, start: list[tf.Tensor]) -> dict[str, float]:
        """The probe's columns for the weights the model holds, ``start`` being the kernels at
        the start of their epoch."""
        began = clock.now()
        x, y = self.probe
        all_vars = self.model.trainable_variables
        acts = _ActivationStats()
        names = self.relu_names
        full = [np.zeros(v.shape, np.float64) for v in all_vars]
        loss_sum = hits = 0.0
        # auto probes only a few epochs of a fold whose epochs are short: tracing would not pay
        step = self._probe_step if self._probes >= EAGER_PROBES else self._probe_step.python_function
        self._probes += 1
        chunk = self._chunk_rows()
        for i in range(0, len(y), chunk):  # chunks bound the memory
            loss, correct, grads, summaries = step(select(x, slice(i, i + chunk)), y[i:i + chunk])
            loss_sum, hits = loss_sum + float(loss), hits + float(correct)
            for j, g in enumerate(grads):
                full[j] += g.numpy().astype(np.float64)
            for name, (total, total_sq, count, fires) in zip(names, summaries):
                acts.add(name, float(total), float(total_sq), float(count), fires.numpy())
        full = [g / len(y) for g in full]
        total_sq = sum(float(np.sum(np.square(g))) for g in full)
        kernel_ids = {id(v): j for j, v in enumerate(all_vars)}
        grads = [full[kernel_ids[id(v)]] for v in self.kernels]

        # The probe's rows are training rows: in inference mode they should score at least as
        # well as the epoch's running (training-mode) accuracy; far worse means inference mode
        # is broken, e.g. BatchNorm moving statistics lagging the weights.
        out: dict[str, float] = {
            "probe_loss": loss_sum / len(y),
            f"probe_{self.task.progress_metric}": hits / len(y),
            "grad_norm": math.sqrt(total_sq),
        }
        ratios = []
        for before, now in zip(start, self.kernels):
            norm = float(tf.norm(before))
            ratios.append(float(tf.norm(now - before)) / norm / max(self.steps_per_epoch, 1)
                          if norm > 0 else float("nan"))
        self._histograms = [(name, v.numpy(), g) for name, v, g in zip(self.kernel_names, self.kernels, grads)]
        finite = [r for r in ratios if np.isfinite(r)]
        out["update_ratio_median"] = float(np.median(finite)) if finite else float("nan")
        out["update_ratio_min"] = float(min(finite)) if finite else float("nan")
        out["update_ratio_max"] = float(max(finite)) if finite else float("nan")
        variances = [acts.variance(n) for n in names if n in acts.count]
        deads = [acts.dead(n) for n in names if n in acts.count]
        out["act_var_first"] = variances[0] if variances else float("nan")
        out["act_var_last"] = variances[-1] if variances else float("nan")
        out["act_var_min"] = min(variances) if variances else float("nan")
        out["dead_relu_max"] = max(deads) if deads else float("nan")
        out["dead_relu_mean"] = float(np.mean(deads)) if deads else float("nan")
        for name, ratio, g in zip(self.kernel_names, ratios, grads):
            out[f"update_ratio/{name}"] = ratio
            out[f"grad_norm/{name}"] = float(np.linalg.norm(g))
        for name in names:
            if name in acts.count:
                out[f"act_var/{name}"] = acts.variance(name)
                out[f"dead_relu/{name}"] = acts.dead(name)
        self._probe_seconds = clock.now() - began
        return out

    # after training --------------------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.rows[e] for e in sorted(self.rows)])

    def finish(self, best_epoch: int | None = None) -> list[str]:
        """Verdicts for this fold; writes diagnostics.json and learning_curve.png (chief only)."""
        if not self.active or self.model is None:
            return []
        if self._writer is not None:
            self._writer.close()
        frame = self.frame()
        momentum = self.batchnorm["momentum"][0] if len(self.batchnorm.get("momentum", [])) == 1 else None
        found = diagnose(frame, chance=self.task.chance(), bn_layers=self.batchnorm.get("layers", 0),
                         bn_momentum=momentum, steps_per_epoch=self.steps_per_epoch,
                         accuracy=self.task.progress_metric if self.task.progress_is_accuracy else None,
                         higher_is_better=self.task.higher_is_better, metric=self.task.metric_name)
        if len(frame):
            plot_learning_curve(frame, best_epoch, self.fold_dir / CURVE, self.title, self.task.progress_metric)
        write_json(self.fold_dir / JSON, {
            "verdicts": found,
            "best_epoch": best_epoch,
            "epochs": len(frame),
            "steps_per_epoch": self.steps_per_epoch,
            "probe_rows": int(len(self.probe[0])),
            "probe_every": self.probe_every,
            "probed_epochs": [int(e) for e, r in sorted(self.rows.items()) if r.get("probed", 1)],
            "batchnorm": self.batchnorm,
            "kernels": self.kernel_names,
            "relu_layers": self.relu_names,
            "activations_unavailable": self.taps_error,
            "update_ratio": "||W_end - W_start|| / ||W_start|| over the probed epoch / steps per epoch (kernels only)",
            "probe_mode": "outside the training step, training=False (no dropout; BatchNorm moving statistics)",
            "thresholds": {"ratio_high": RATIO_HIGH, "ratio_low": RATIO_LOW, "grad_huge": GRAD_HUGE,
                           "grad_growth": GRAD_GROWTH, "grad_tiny": GRAD_TINY, "gap": GAP,
                           "gap_epochs": GAP_EPOCHS, "inference_gap": INFERENCE_GAP, "dead": DEAD,
                           "collapse": COLLAPSE, "improving_epochs": IMPROVING_EPOCHS,
                           "improving_gain": IMPROVING_GAIN},
        })
        self.set_model(None)  # let the model go
        self.taps, self.kernels = None, []
        self._start, self._last_start, self._histograms = [], [], []
        self._probe_step = None
        return found


def _layer_name(v) -> str:
    path = getattr(v, "path", None) or v.name
    return path.rsplit("/", 1)[0] if "/" in path else path


def _tb_name(key: str, metric: str) -> str:
    if key in ("loss", metric):
        return f"{key}/train"
    if key.startswith("val_") and "/" not in key:
        return f"{key[4:]}/val"
    return key


def plot_learning_curve(frame: pd.DataFrame, best_epoch: int | None, path: Path, title: str = "",
                        metric: str = "accuracy") -> None:
    """Loss and the device metric per epoch, train vs val, the best epoch marked."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; set before pyplot is imported
    import matplotlib.pyplot as plt

    panels = [(k, f"val_{k}") for k in ("loss", metric) if k in frame]
    width, height = 5 * max(len(panels), 1), 3.6
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(width, height), squeeze=False)
    for ax, (train_key, val_key) in zip(axes[0], panels):
        ax.plot(frame["epoch"], frame[train_key], marker="o", label="train")
        if val_key in frame:
            ax.plot(frame["epoch"], frame[val_key], marker="o", label="val")
        if best_epoch:
            ax.axvline(best_epoch, color="red", linestyle="--", label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(train_key)
        ax.legend()
    if title:
        fig.suptitle(title)
    # Fixed margins in inches: tight_layout took a third of the drawing's time, once per fold
    fig.subplots_adjust(left=0.8 / width, right=1 - 0.2 / width, bottom=0.55 / height,
                        top=1 - (0.5 if title else 0.25) / height, wspace=1.0 / 5)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
