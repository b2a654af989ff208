"""tf.data pipelines over in-memory uint8 arrays."""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def make_dataset(x: np.ndarray, y: np.ndarray | None, batch_size: int, shuffle: bool = False,
                 seed: int = 0) -> tf.data.Dataset:
    """Batches of (images, labels), or images alone when ``y`` is None; shuffled with ``seed``."""
    ds = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
