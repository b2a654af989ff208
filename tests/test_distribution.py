"""tf.distribute on CPU: two logical devices, and two localhost workers."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from comp.training.strategy import localhost_cluster
from tests.conftest import TEXTBOOK, comp_subprocess

# No BatchNorm, augmentation or dropout: each replica would compute its own batch statistics
# and draw its own random transforms and dropout masks, and these tests compare training
# across strategies (measured: with dropout 0.25 the two runs below differ by 0.02 after
# two epochs; without it their losses agree to 1e-6).
FAST = (*TEXTBOOK, "split.duplicate_aware=false", "train.epochs=2", "train.lr=3e-4", "model.hp.dropout=0.0")


def _record(workdir, run, stage="baseline"):
    return json.loads((workdir / "runs" / run / stage / "stage.json").read_text())


@pytest.mark.slow  # ~40 s; the LR scaled to the replicas stays in the default run (CI's 20 minutes)
def test_mirrored_over_two_logical_cpus_matches_one_device(workdir):
    one = comp_subprocess("run", "stage=baseline", *FAST, "run=one", cwd=workdir)
    # Same global batch (2 x 32 = 64) and LR: the two runs compute the same training.
    two = comp_subprocess("run", "stage=baseline", *FAST, "run=two", "train.logical_cpus=2",
                          "train.batch_size=32", "train.lr_scaling=none", cwd=workdir)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert "2 replica(s)" in two.stdout and "1 replica(s)" in one.stdout
    a, b = _record(workdir, "one"), _record(workdir, "two")
    # Per-example losses averaged over the global batch: only float summation order differs.
    assert abs(a["score"] - b["score"]) <= 0.01
    assert a["replicas"] == 1 and b["replicas"] == 2 and a["lr"] == b["lr"]


def test_lr_follows_the_replicas():
    from comp.training.strategy import scaled_lr

    assert scaled_lr(3e-4, 4, "linear") == 3e-4 * 4
    assert scaled_lr(3e-4, 4, "sqrt") == 3e-4 * 2
    assert scaled_lr(3e-4, 4, "none") == 3e-4


@pytest.mark.slow  # ~55 s on 2 cores: in `pytest -m slow` to keep CI under 20 minutes
def test_two_localhost_workers_train_identical_weights(workdir):
    import keras

    cluster = localhost_cluster(2)
    exe = str(Path(sys.executable).with_name("comp"))
    args = [exe, "run", "stage=all", *FAST, "split.folds=2", "run=mw"]
    procs = [subprocess.Popen(args, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                                         "task": {"type": "worker", "index": i}})})
             for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    assert "2 replica(s)" in outs[0][0]
    assert "worker 1 of 2: writing scratch results to" in outs[1][0]

    chief = workdir / "runs/mw/baseline/fold_0/model.keras"
    worker = workdir / "runs/mw/.worker-1/baseline/fold_0/model.keras"
    w0 = keras.saving.load_model(chief).get_weights()
    w1 = keras.saving.load_model(worker).get_weights()
    assert len(w0) == len(w1) > 0
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    # Only the chief publishes; the worker's identical submission stays in its scratch folder.
    (chief_sub,) = (workdir / "submissions").glob("mw-baseline-accuracy=*.csv")
    (worker_sub,) = (workdir / "runs/mw/.worker-1/submissions").glob("mw-baseline-accuracy=*.csv")
    assert chief_sub.read_bytes() == worker_sub.read_bytes()
    # The pre-flight checks train on the folds' Trainer: they run on both workers, in step.
    checks = [re.findall(r"^(?:PASS|WARN|FAIL) .*$", out, re.MULTILINE) for out, _ in outs]
    assert len(checks[0]) == 4 and checks[0] == checks[1], checks
    assert not any("skipped" in line for line in checks[0]), checks[0]


@pytest.mark.slow  # ~25 s in a new process; training under the mirrored strategy is tested above
def test_the_checks_train_under_a_mirrored_strategy(workdir):
    done = comp_subprocess("run", "stage=check", *FAST, "train.logical_cpus=2", "check.lr_steps=60", cwd=workdir)
    assert done.returncode == 0, done.stderr
    record = _record(workdir, "digits", "check")
    assert len(record["checks"]) == 4 and not record["skipped"], record["checks"]
    assert [c["name"] for c in record["checks"]][1] == "overfit one batch"
    assert record["checks"][1]["status"] == "PASS"  # 20 examples memorised, split over two replicas
    assert record["checks"][2]["numbers"]["steps"] > 0  # the LR range test swept on both replicas


def test_xla_on_several_cpu_devices_is_refused_before_any_work(workdir):
    done = comp_subprocess("run", "stage=baseline", "train.xla=on", "train.logical_cpus=2", cwd=workdir)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: train.xla=on: XLA compiles the train step on GPUs")
    assert not (workdir / "runs").exists()
