"""A training step's memory against comp's estimate, and the batch train.max_memory picks.

    python benchmarks/memory.py [64 128 300]

For each image side, in a fresh process: small_cnn (grey, 10 classes) built as comp builds
it, its layer outputs per example (``comp.training.memory.activation_bytes``), and the peak
resident memory of a few training steps (Keras ``fit``, after one traced step) at the batch
``train.max_memory=auto`` picks and at the default batch of 64. Prints, per run, the
measured growth per example over the estimate (what ``TRAIN_FACTOR`` covers), the peak RSS
and the time per example. Target: the measured growth stays under ``TRAIN_FACTOR`` x the
estimate, and the auto batch keeps a 300x300 step far below the default's.
"""
from __future__ import annotations

import subprocess
import sys

STEP = r"""
import resource, sys, time
import numpy as np, pandas as pd
side, batch = int(sys.argv[1]), sys.argv[2]
from comp.api import InputSpec
from comp.tasks import TaskSource, make_task
from comp.training.memory import activation_bytes, fitting_batch, memory_limit
from comp.training.model import build_model

labels = pd.DataFrame({"label": [str(c) for c in range(10)]})
task = make_task("classification", TaskSource(labels, labels.assign(id="x")[["id", "label"]], "id", ("label",)))
model = build_model(InputSpec((side, side, 1)), task, "small_cnn", {})[0]
per_example = activation_bytes(model)
batch = fitting_batch(per_example, 64, memory_limit("auto")) if batch == "auto" else int(batch)
rng = np.random.default_rng(0)
x = rng.random((batch * 3, side, side, 1), dtype=np.float32)
y = rng.integers(0, 10, batch * 3)
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0)  # traced
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
began = time.perf_counter()
model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
seconds = time.perf_counter() - began
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(per_example, batch, before, peak, seconds / len(y))
"""


def _step(side: int, batch: str) -> tuple[float, int, float, float, float]:
    out = subprocess.run([sys.executable, "-c", STEP, str(side), batch], check=True, capture_output=True, text=True)
    per_example, used, before, peak, per_row = out.stdout.split()[-5:]
    return float(per_example), int(used), float(before), float(peak), float(per_row)


def main(argv: list[str]) -> int:
    from comp.training.memory import TRAIN_FACTOR

    sides = [int(a) for a in argv] or [64, 128, 300]
    print("| side | batch | layer outputs / example | peak RSS | growth / example over the estimate | ms / example |")
    print("|---|---|---|---|---|---|")
    for side in sides:
        for batch in ("auto", "64"):
            per_example, used, before, peak, per_row = _step(side, batch)
            # What a step adds per example: over the peak of the same process shape training one
            # example at a time (the model, the traced step and the runtime, without the batch).
            base = _step(side, "1")[3]
            growth = (peak - base) / max(used - 1, 1)
            print(f"| {side}x{side} | {used} ({batch}) | {per_example / 2**20:.1f} MiB | {peak / 2**20:.0f} MiB | "
                  f"{growth / per_example:.2f} (limit {TRAIN_FACTOR}) | {per_row * 1000:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
