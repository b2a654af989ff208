"""Pick the tf.distribute strategy, the precision and this process's role for a run."""
from __future__ import annotations

import json
import math
import os

from comp.errors import ConfigError


def configure_devices(logical_cpus: int | None) -> None:
    """Split the CPU into ``logical_cpus`` devices: the multi-device path, testable without GPUs.

    Must run before TensorFlow touches a device, so the pipeline calls it first.
    """
    if not logical_cpus or logical_cpus < 2:
        return
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
    except RuntimeError:  # devices already initialised in this process (e.g. a second run in-process)
        if len(tf.config.list_logical_devices("CPU")) != logical_cpus:
            raise ConfigError(f"train.logical_cpus={logical_cpus}: TensorFlow already started with other "
                              "devices in this process; run comp in a fresh process")


def worker_role() -> tuple[int, int]:
    """(index, count) of this worker from TF_CONFIG; (0, 1) without it. Index 0 is the chief."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0, 1
    try:
        config = json.loads(raw)
        workers = len(config["cluster"].get("worker", [])) + len(config["cluster"].get("chief", []))
        task = config["task"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError("TF_CONFIG is not valid JSON with cluster and task; see the README's multi-worker section") from None
    index = 0 if task["type"] == "chief" else task["index"] + (1 if "chief" in config["cluster"] else 0)
    return index, max(workers, 1)


def localhost_cluster(workers: int) -> dict:
    """A TF_CONFIG ``cluster`` of ``workers`` processes on this machine, on ports free now:
    multi-worker training tried on one machine (tests, benchmarks/scaling.py)."""
    import socket

    socks = [socket.socket() for _ in range(workers)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return {"worker": [f"127.0.0.1:{sock.getsockname()[1]}" for sock in socks]}
    finally:
        for sock in socks:
            sock.close()


def get_strategy(name: str = "auto"):
    """auto: TF_CONFIG -> MultiWorkerMirroredStrategy, several GPUs (or logical CPUs) ->
    MirroredStrategy, one GPU -> OneDeviceStrategy, else the default strategy."""
    import tensorflow as tf

    if name == "auto" and os.environ.get("TF_CONFIG"):
        name = "multi_worker"
    if name == "multi_worker":  # before anything lists devices: that would start TensorFlow
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError("train.strategy=multi_worker needs TF_CONFIG; see the README's multi-worker section")
        return _multi_worker()
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    if name == "auto":
        if len(gpus) > 1 or len(cpus) > 1:
            name = "mirrored"
        else:
            name = "one_device" if gpus else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in cpus]
        return tf.distribute.MirroredStrategy(devices)
    raise ConfigError(f"train.strategy={name!r}: use auto, default, one_device, mirrored or multi_worker")


_MULTI_WORKER = None


def _multi_worker():
    # TensorFlow allows one MultiWorkerMirroredStrategy per process: reuse it across folds.
    global _MULTI_WORKER
    if _MULTI_WORKER is None:
        import tensorflow as tf

        _MULTI_WORKER = tf.distribute.MultiWorkerMirroredStrategy()
    return _MULTI_WORKER


def scaled_lr(lr: float, replicas: int, rule: str) -> float:
    """The LR for ``replicas`` times the per-replica batch (docs/recipe.md 5: linear or sqrt)."""
    return {"linear": lr * replicas, "sqrt": lr * math.sqrt(replicas), "none": lr}[rule]


def set_precision(mode: str) -> str:
    """mixed_float16 on GPU by default (float32 head and loss), float32 elsewhere."""
    import keras
    import tensorflow as tf

    policy = "mixed_float16" if mode == "on" or (mode == "auto" and tf.config.list_logical_devices("GPU")) else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy
