"""Rows into batches: what training, evaluation and prediction feed the model.

Inputs are arrays, streamed rows (``comp.data.rows``: images read on demand, or views of
an array held in memory), or dicts of them (table columns). Nothing here copies a fold:
batches are gathered by index inside ``tf.data`` from host tensors made once per fit, or
read from disk batch by batch.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tensorflow as tf

Order = Callable[[int], np.ndarray]  # epoch -> the row positions of its batches, in order


def streamed(leaf: Any) -> bool:
    """Rows read on demand (e.g. ``comp.data.rows.DiskRows``: ``read(positions)``, ``shape``,
    ``dtype``) rather than an array held in memory."""
    return getattr(leaf, "streamed", False)


def rows_of(x: Any) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def select(x: Any, rows: Any) -> Any:
    """``x[rows]`` for an array, or for every array of a dict (rows: a slice or indices)."""
    return {k: v[rows] for k, v in x.items()} if isinstance(x, dict) else x[rows]


def _gather(data: Any) -> Callable:
    """``index -> data's rows at index``: a gather from host tensors, a read for streamed rows."""
    def one(leaf, index):
        if not streamed(leaf):
            return tf.gather(leaf, index)
        if hasattr(leaf, "host_tensor"):  # rows of an array in memory (comp.data.rows.MemoryRows)
            rows = index if leaf.index is None else tf.gather(tf.constant(leaf.index), index)
            return tf.gather(leaf.host_tensor(), rows)
        rows = tf.numpy_function(leaf.read, [index], tf.as_dtype(leaf.dtype), stateful=False)
        rows.set_shape([None, *leaf.shape[1:]])
        return rows

    return lambda index: tf.nest.map_structure(lambda leaf: one(leaf, index), data)


# tf.data's autotuning runs a model thread per iterator whose sleep grows to tens of seconds,
# and an iterator's destructor waits for that thread to wake: measured on mnist5k at
# budget=5m, one fold in three lost 5-40 s at the end of its fit (the distributed training
# iterator freed), which the folds after it paid in epochs. The pipelines here gather rows
# by index and are never the bottleneck, so a fixed depth does as well without the thread.
PARALLEL_GATHERS = 4  # batches gathered (or read from disk) at once
PREFETCHED = 4  # batches ready ahead of the step (across epoch ends)


def _fixed(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` without tf.data's autotuning (see PARALLEL_GATHERS)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def batches(x: Any, batch_size: int) -> tf.data.Dataset:
    """Rows of ``x`` (an array, streamed rows, or a dict of them) in order, batched."""
    if not any(streamed(leaf) for leaf in tf.nest.flatten(x)):
        return _fixed(tf.data.Dataset.from_tensor_slices(x).batch(batch_size))
    n = rows_of(x)
    return _fixed(tf.data.Dataset.range(0, n, batch_size)
                  .map(lambda start: tf.range(start, tf.minimum(start + batch_size, n)))
                  .map(_gather(device_data(x)), num_parallel_calls=PARALLEL_GATHERS, deterministic=True)
                  .prefetch(PREFETCHED))


def device_data(data: Any) -> Any:
    """``data`` (arrays, or tuples/dicts of them) as host tensors, copied once for a whole
    fit: every epoch gathers its batches from these by index. Streamed rows stay where
    they are (on disk): batches read them."""
    with tf.device("/cpu:0"):
        return tf.nest.map_structure(lambda leaf: leaf if streamed(leaf) else tf.convert_to_tensor(leaf), data)


def shuffled(rows: int, seed: int) -> Order:
    """Each epoch its own seeded permutation of the rows (``seed + epoch``): a resumed fit
    continues with the same batches."""
    return lambda epoch: np.random.default_rng(seed + int(epoch)).permutation(rows)


def epoch_length(order: Order) -> int:
    """Row positions per epoch of ``order`` (the same for every epoch)."""
    return len(order(0))


def training_batches(data: Any, order: Order, batch_size: int, epochs: range) -> tf.data.Dataset:
    """The batches of ``epochs`` one after another, each epoch's rows in the order ``order``
    gives, gathered in parallel and prefetched across epoch ends (the next epoch's first
    batches load while this one is evaluated). No copy of the data per epoch and no shuffle
    buffer holding one; one dataset for the whole fit, so it is distributed once."""
    length = epoch_length(order)

    def positions(epoch):
        return np.asarray(order(int(epoch)), dtype=np.int64)

    def epoch_rows(epoch):
        permutation = tf.numpy_function(positions, [epoch], tf.int64, stateful=False)
        permutation.set_shape([length])
        return tf.data.Dataset.from_tensor_slices(permutation).batch(batch_size)

    return _fixed(tf.data.Dataset.from_tensor_slices(np.asarray(list(epochs), dtype=np.int64)).flat_map(epoch_rows)
                  .map(_gather(data), num_parallel_calls=PARALLEL_GATHERS, deterministic=True)
                  .prefetch(PREFETCHED))


def epoch_batches(data: Any, rows: int, batch_size: int, seed: int) -> tf.data.Dataset:
    """One shuffled epoch of ``training_batches`` (data from ``device_data``)."""
    return training_batches(data, shuffled(rows, seed), batch_size, range(1))
