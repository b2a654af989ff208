"""Test-time augmentation cost: N views vs N single passes of the same model, side by side.

`python benchmarks/tta_predict.py [rows=20000] [size=32] [views=4]` builds the default image
model (small_cnn, untrained: the cost does not depend on the weights) for size x size x 3
images, then times, alternately and best of 3:
- one plain pass over the rows (``predict_outputs``), N times;
- one call of ``FoldModel.predictions`` with N - 1 views (each view one batched pass).
It prints the ratio (target <= 1.1: a view costs no more than a plain pass, no Python loop
per image) and checks the identity view's predictions equal the plain pass's.
"""
from __future__ import annotations

import sys
import time

import numpy as np


def main(args: list[str]) -> None:
    opts = dict(a.split("=", 1) for a in args)
    rows, size, n_views = int(opts.get("rows", 20000)), int(opts.get("size", 32)), int(opts.get("views", 4))
    import pandas as pd

    from comp.api import InputSpec
    from comp.augmentation import pick_views, test_views
    from comp.data.inputs import ImageInputs
    from comp.tasks import make_task
    from comp.tasks.base import TaskSource
    from comp.training.fold_model import FoldModel
    from comp.training.inference import predict_outputs
    from comp.training.model import build_model

    labels = pd.DataFrame({"label": [str(i % 10) for i in range(20)]})
    task = make_task("classification", TaskSource(labels, labels.assign(id="x")[["id", "label"]], "id", ("label",)))
    spec = InputSpec((size, size, 3))
    model, _ = build_model(spec, task, "small_cnn", {}, ())
    x = np.random.default_rng(0).integers(0, 256, (rows, size, size, 3), dtype=np.uint8)
    inputs = ImageInputs(x)
    views = pick_views(test_views(("shift", "rotate", "zoom"), spec, task.kind), n_views)
    fold_model = FoldModel(model)
    all_rows = np.arange(rows)
    predict_outputs(model, x[:512])  # trace once, outside the timings
    fold_model.predictions(inputs, all_rows[:512], task, views=views)

    singles, tta = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n_views):
            plain = predict_outputs(model, x)
        singles.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fold_model.predictions(inputs, all_rows, task, views=views)
        tta.append(time.perf_counter() - t0)
    ratio = min(tta) / min(singles)
    one = fold_model.predictions(inputs, all_rows, task)
    assert np.allclose(one, task.predictions(plain), atol=1e-6)
    print(f"{rows} images {size}x{size}x3, small_cnn: {n_views} single passes {min(singles):.2f}s, "
          f"{n_views} views ({', '.join(['original'] + [v.name for v in views])}) {min(tta):.2f}s: "
          f"ratio {ratio:.3f} (target <= 1.1)")


if __name__ == "__main__":
    main(sys.argv[1:])
