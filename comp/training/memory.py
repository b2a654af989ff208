"""Batch sizes that fit in memory: a step's activations, estimated from the model, kept
under a limit.

A training step holds every layer's output for the backward pass, so its memory grows with
the batch times the sum of the layers' output sizes: at 300x300 a batch of 64 through
small_cnn held 11 GB. ``activation_bytes`` reads that sum from the built model (its
layers' symbolic outputs, nested models included); ``fitting_batch`` takes the largest
batch, up to the one asked for, whose estimate fits the limit. The factors were measured
(benchmarks/memory.py): peak resident growth per example over the estimate.

Reading the memory the machine has free (``/proc/meminfo``) is written by hand: no library
comp depends on reports it (psutil would, as a new dependency).
"""
from __future__ import annotations

import math
import os
from typing import Any

# Measured with small_cnn at 64-300 px: a training step's resident growth per example was
# 0.95-1.16x the sum of its layers' outputs, inference's 0.25-0.27x (only a few outputs are
# alive at once). Each with a margin:
TRAIN_FACTOR = 1.25
PREDICT_FACTOR = 0.35
AUTO_SHARE = 0.25  # max_memory=auto: this share of the machine's memory ...
AUTO_CAP = int(1.5 * 2**30)  # ... and at most this: on a CPU a smaller batch costs no speed per
# example (300x300, small_cnn: 126 ms at batch 4, 214 ms at 8 and 16), only a noisier step


def machine_bytes() -> int | None:
    """The machine's memory (MemTotal, or the cgroup's limit when lower), or None where
    unknown. Not what is free now: the batch must not change between a run and its resume,
    or between the trials of one search."""
    found = []
    try:
        with open("/proc/meminfo") as info:
            found += [int(line.split()[1]) * 1024 for line in info if line.startswith("MemTotal:")]
    except (OSError, ValueError, IndexError):
        try:
            found.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    try:
        with open("/sys/fs/cgroup/memory.max") as limit:
            found.append(int(limit.read().strip()))  # "max" (no limit) is not a number
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def memory_limit(setting: float | str = "auto") -> int | None:
    """Bytes a step's activations may take in host memory: ``setting`` in GiB, or auto (a
    share of the machine's memory, capped; no limit where the model runs on GPUs, whose
    memory this does not describe); None where nothing limits it."""
    if setting != "auto":
        return int(float(setting) * 2**30)
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        return None
    total = machine_bytes()
    return None if total is None else int(min(AUTO_SHARE * total, AUTO_CAP))


def activation_bytes(model: Any) -> int | None:
    """Bytes of every layer's outputs for one example (nested models' layers counted once,
    at their own layers), or None when the model does not expose its layers' outputs (a
    subclassed model): then no batch is limited."""
    import keras
    import numpy as np
    import tensorflow as tf

    def total(m) -> int:
        count = 0
        for layer in m.layers:
            if isinstance(layer, keras.Model) and layer.layers:
                count += total(layer)
                continue
            try:
                outputs = tf.nest.flatten(layer.output)
            except (AttributeError, ValueError):  # a layer called more than once or never
                continue
            for out in outputs:
                try:  # strings (table columns) have no fixed size: not counted
                    size = tf.as_dtype(out.dtype).size
                except (TypeError, ValueError):
                    continue
                if all(d is not None for d in tuple(out.shape)[1:]):
                    count += int(np.prod(out.shape[1:])) * size
        return count

    if getattr(model, "_comp_activation_bytes", None) is not None:  # walked once per model
        return model._comp_activation_bytes or None
    try:
        counted = total(model)
    except Exception:  # a model whose layers cannot be walked: no estimate, no limit
        return None
    try:
        model._comp_activation_bytes = counted
    except AttributeError:
        pass
    return counted or None


def fitting_batch(per_example: int | None, batch: int, limit: int | None, factor: float = TRAIN_FACTOR) -> int:
    """The largest batch up to ``batch`` whose estimated memory fits ``limit`` (at least 1)."""
    if not per_example or not limit:
        return batch
    return max(1, min(batch, math.floor(limit / (factor * per_example))))


def batch_for_memory(model: Any, batch: int, max_memory: float | str, lr_scaling: str,
                     replicas: int = 1) -> tuple[int, float]:
    """The per-replica batch of a training step of ``model`` under ``max_memory`` (see
    ``memory_limit``; shared by the ``replicas`` on this machine), and the factor its LR
    takes for it (``lr_scaling``, as for replicas: the LR of ``batch`` times this is the LR
    of the smaller batch)."""
    from comp.training.strategy import scaled_lr

    limit = memory_limit(max_memory)
    fitted = fitting_batch(activation_bytes(model), batch, limit // max(replicas, 1) if limit else None)
    return fitted, scaled_lr(1.0, fitted / batch, lr_scaling)


def inference_batch(model: Any, batch: int) -> int:
    """The batch of a forward pass of ``model`` (inference, BatchNorm recalibration) within
    the auto limit: a batch of 256 at 300x300 is gigabytes of activations."""
    return fitting_batch(activation_bytes(model), batch, memory_limit(), PREDICT_FACTOR)


def describe_cut(batch: int, asked: int, max_memory: float | str) -> str:
    """The line that says a step's batch was cut to fit memory."""
    return (f"batch {batch} instead of train.batch_size={asked}: a step's activations kept within "
            f"train.max_memory={max_memory}")
