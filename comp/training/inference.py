"""A model in inference mode over rows: traced once, batch by batch, under every strategy."""
from __future__ import annotations

from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from comp.training.feeding import batches


def make_forward(model: keras.Model, view: Any = None) -> Callable:
    """``model`` in inference mode as a traced function, each batch first through ``view`` (a
    fixed test-time view, e.g. ``comp.layers.AffineView``) when given. Traced once, on the
    first batch, with the batch dimension left open (a last, smaller batch reuses the trace).
    Keep it to reuse the trace: weights assigned later are read by it, not baked in."""
    def call(batch):
        return model(batch if view is None else view(batch), training=False)

    traced = None

    def forward(batch):
        nonlocal traced
        if traced is None:
            spec = tf.nest.map_structure(lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), batch)
            traced = tf.function(call, input_signature=[spec])
        return traced(batch)

    return forward


def predict_outputs(model: keras.Model, x: Any, batch_size: int = 256, view: Any = None,
                    forward: Callable | None = None) -> np.ndarray:
    """``model``'s outputs on ``x`` in inference mode, batch by batch (through ``view`` when
    given): one batched pass. Unlike ``model.predict`` it takes string columns (object arrays)
    and works under every strategy. ``forward``: a ``make_forward`` result to reuse."""
    from comp.training.memory import inference_batch

    forward = forward or make_forward(model, view)
    batch_size = inference_batch(model, batch_size)
    return np.concatenate([forward(b).numpy() for b in batches(x, batch_size)])
