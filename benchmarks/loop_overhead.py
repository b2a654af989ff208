"""comp's training path vs plain `model.fit`, side by side in one run.

    python benchmarks/loop_overhead.py [digits|mnist5k] [epochs=10] [repeats=2] [diagnostics=off] [keep=off] [xla=on] [augment=off]

Both train the same Keras model (built by comp: uint8 input, scaling and the default
shift/rotate/zoom augmentation in the graph, small_cnn, the task's head) on the same rows
(fold 0 of 5 as validation) with the same batch (64), optimizer (AdamW, cosine schedule at
the same LR) and number of epochs, validating after every epoch.

- comp: `cross_validate(..., only=[0])` with the defaults: data gathered by index through
  tf.data, the strategy's custom step, the competition metric and best weights after every
  epoch, the top-3/SWA/EMA weights kept, the resume state saved, diagnostics on.
- keras: `model.fit(x, y, validation_data=...)` on in-memory float32 arrays.

Prints each side's best wall time over ``repeats`` alternating runs and the ratio
keras / comp (1.0: no overhead; the target is >= 0.97). ``xla=on`` compiles comp's train
step with XLA (``train.xla=on``; model.fit stays as Keras runs it with deterministic ops:
without XLA), to measure what XLA does on this machine; the default augmentation's affine
transforms have no XLA kernel, so pair it with ``augment=off`` (both sides train without
augmentation).
"""
from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from recipe_defaults import dataset  # noqa: E402


def main(argv: list[str]) -> int:
    import keras

    from comp.competition import load_competition
    from comp.config import load_config
    from comp.data.loading import load_inputs
    from comp.tasks import make_task
    from comp.training.batchnorm import resolve_momentum
    from comp.training.cv import cross_validate
    from comp.training.model import build_model
    from comp.training.optimizers import build_optimizer
    from comp.training.schedules import PlannedSchedule
    from comp.training.spec import ModelSpec, TrainSpec

    name = next((a for a in argv if a in ("digits", "mnist5k")), "digits")
    epochs = int(next((a for a in argv if a.startswith("epochs=")), "epochs=10").split("=")[1])
    repeats = int(next((a for a in argv if a.startswith("repeats=")), "repeats=2").split("=")[1])
    from comp.demo import cache_root, resolve

    root = resolve(dataset(name)[0], cache_root())
    cfg = load_config([f"competition={root}"])
    competition = load_competition(root)
    task = make_task(competition.task_kind, competition.task_source(), competition.metric, competition.root, [])
    inputs, _ = load_inputs(competition, "train", cfg.reading())
    y = task.encode(competition.train[competition.target_cols])
    fold_of = np.arange(len(y)) % 5
    fit_rows, val_rows = np.flatnonzero(fold_of != 0), np.flatnonzero(fold_of == 0)
    augmentations = () if "augment=off" in argv else ("rotate", "shift", "zoom")
    batch, lr = 64, 2e-3
    diagnostics = "diagnostics=off" not in argv
    keep = {} if "keep=off" not in argv else {"snapshots": 0, "swa_epochs": 0, "keep_ema": 0}
    spec = TrainSpec(lr=lr, epochs=epochs, batch_size=batch, patience=epochs, optimizer="adamw", weight_decay=0.01,
                     label_smoothing=0.0, schedule="cosine", warmup=1.0, **{"snapshots": 3, "swa_epochs": 5, "keep_ema": "auto", **keep},
                     diagnostics=diagnostics, xla="on" if "xla=on" in argv else "off")

    def run_comp() -> float:
        with tempfile.TemporaryDirectory() as out:
            began = time.perf_counter()
            cross_validate(inputs, y, fold_of, task, ModelSpec("small_cnn", {}, augmentations), spec, Path(out),
                           seed=0, only=[0], log=lambda _: None)
            return time.perf_counter() - began

    def run_keras() -> float:
        keras.utils.set_random_seed(0)
        steps = math.ceil(len(fit_rows) / batch)
        began = time.perf_counter()
        model, _ = build_model(inputs.spec(fit_rows), task, "small_cnn", {}, augmentations,
                               bn_momentum=resolve_momentum("auto", steps))
        schedule = PlannedSchedule(lr, "cosine", epochs * steps, warmup_steps=steps)
        model.compile(optimizer=build_optimizer("adamw", schedule, weight_decay=0.01), loss=task.loss("auto", 0.0))
        x = inputs.take(fit_rows).astype(np.float32)
        xv = inputs.take(val_rows).astype(np.float32)
        model.fit(x, y[fit_rows], batch_size=batch, epochs=epochs, validation_data=(xv, y[val_rows]), verbose=0)
        seconds = time.perf_counter() - began
        keras.backend.clear_session()
        return seconds

    comp_s, keras_s = [], []
    for _ in range(repeats):
        keras_s.append(run_keras())
        comp_s.append(run_comp())
    c, k = min(comp_s), min(keras_s)
    print(f"{name}, {len(fit_rows)} training rows, {epochs} epochs, batch {batch}: comp {c:.1f}s "
          f"(runs {', '.join(f'{s:.1f}' for s in comp_s)}), model.fit {k:.1f}s "
          f"(runs {', '.join(f'{s:.1f}' for s in keras_s)}): ratio model.fit/comp {k / c:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
