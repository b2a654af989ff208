"""The input pipeline alone vs what the model consumes, side by side in one run.

    python benchmarks/input_pipeline.py [20000] [size=64] [epochs=2]

On N synthetic size x size x 3 uint8 images (``stage_all_memory.scene``), held in memory
and kept on disk (``DiskRows`` over a ``.npy`` file, as a cache entry above
``data.in_memory_mb`` is read), it times:

- the pipeline: one epoch of ``epoch_batches`` (seeded permutation, parallel gather or
  read, prefetch), every batch pulled to the host and nothing else done with it;
- the model: one epoch of the training step of comp's default model for the images
  (small_cnn with its default shift/rotate/zoom augmentation in the graph, batch 64),
  after a first epoch that traces it.

Prints images/s of each and the ratio pipeline / model (target >= 10: the model never
waits for its input).
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from stage_all_memory import SHAPES, scene  # noqa: E402


def main(argv: list[str]) -> int:
    import keras
    import pandas as pd
    import tensorflow as tf

    from comp.data.rows import DiskRows
    from comp.tasks import make_task
    from comp.tasks.base import TaskSource
    from comp.training.feeding import device_data, epoch_batches, shuffled, training_batches
    from comp.training.trainer import Trainer
    from comp.training.model import build_model
    from comp.training.spec import TrainSpec

    n = int(next((a for a in argv if a.isdigit()), "20000"))
    size = int(next((a for a in argv if a.startswith("size=")), "size=64").split("=")[1])
    epochs = int(next((a for a in argv if a.startswith("epochs=")), "epochs=2").split("=")[1])
    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(SHAPES), n)
    images = np.stack([scene(rng, size, k) for k in labels])
    frame = pd.DataFrame({"shape": [SHAPES[k] for k in labels]})
    task = make_task("classification", TaskSource(frame, pd.DataFrame({"id": ["a"], "shape": [SHAPES[0]]}), "id",
                                                  ("shape",), {}))
    y = task.encode(frame)
    batch = 64

    def pipeline_seconds(x) -> float:
        data = device_data((x, y))
        best = float("inf")
        for epoch in range(epochs):
            began = time.perf_counter()
            for xb, yb in epoch_batches(data, n, batch, seed=epoch):
                xb.numpy(), yb.numpy()
            best = min(best, time.perf_counter() - began)
        return best

    with tempfile.TemporaryDirectory() as scratch:
        np.save(Path(scratch) / "pixels.npy", images)
        on_disk = DiskRows.open(Path(scratch) / "pixels.npy")
        memory_s, disk_s = pipeline_seconds(images), pipeline_seconds(on_disk)

        from comp.data.inputs import ImageInputs

        spec = ImageInputs(images).spec()

        def build():
            return build_model(spec, task, "small_cnn", {}, ["shift", "rotate", "zoom"])[0]

        keras.utils.set_random_seed(0)
        steps = -(-n // batch)
        trainer = Trainer(tf.distribute.get_strategy(), build, task, TrainSpec(lr=1e-3, epochs=epochs, optimizer="adam", weight_decay=0.0, label_smoothing=0.0,
                                                                        schedule="constant", warmup=0.0, snapshots=0,
                                                                        swa_epochs=0, keep_ema=0.0), 1e-3, steps)
        trainer._build_step(batch, seed=0)
        batches = trainer.distribute(training_batches(device_data((on_disk, y)), shuffled(n, 0), batch, range(epochs + 1)))
        model_s = float("inf")
        for epoch in range(epochs + 1):  # the first epoch traces the step
            began = time.perf_counter()
            trainer._train_epoch(batches, steps, [])
            if epoch:
                model_s = min(model_s, time.perf_counter() - began)
    print(f"{n} images {size}x{size}x3, batch {batch}: pipeline in memory {n / memory_s:,.0f} images/s, "
          f"from disk {n / disk_s:,.0f} images/s; training step (small_cnn + augmentation, fed from disk) "
          f"{n / model_s:,.0f} images/s")
    print(f"ratio pipeline/model: in memory {model_s / memory_s:.1f}x, from disk {model_s / disk_s:.1f}x "
          f"(target >= 10)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
