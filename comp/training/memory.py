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
AUTO_SHARE = 0.25  # max_memory=auto: this share of the memory available when training starts ...
AUTO_CAP = int(1.5 * 2**30)  # ... and at most this: on a CPU a smaller batch costs no speed per
# example (300x300, small_cnn: 126 ms at batch 4, 214 ms at 8 and 16), only a noisier step


def available_bytes() -> int | None:
    """Memory the kernel could give this process now (MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit(setting: float | str = "auto") -> int | None:
    """Bytes a step's activations may take: ``setting`` in GiB, or auto (a share of the
    memory available now, capped); None where nothing is known."""
    if setting != "auto":
        return int(float(setting) * 2**30)
    available = available_bytes()
    return None if available is None else int(min(AUTO_SHARE * available, AUTO_CAP))


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
                if all(d is not None for d in tuple(out.shape)[1:]):
                    count += int(np.prod(out.shape[1:])) * np.dtype(out.dtype).itemsize
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


def batch_for_memory(model: Any, batch: int, max_memory: float | str, lr_scaling: str) -> tuple[int, float]:
    """The per-replica batch of a training step of ``model`` under ``max_memory`` (see
    ``memory_limit``), and the factor its LR takes for it (``lr_scaling``, as for replicas:
    the LR of ``batch`` times this is the LR of the smaller batch)."""
    from comp.training.strategy import scaled_lr

    fitted = fitting_batch(activation_bytes(model), batch, memory_limit(max_memory))
    return fitted, scaled_lr(1.0, fitted / batch, lr_scaling)
