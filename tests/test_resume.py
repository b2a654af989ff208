"""Kill a real run (SIGKILL) at several points; the same command resumes to the same result."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ARGS = ("run", "stage=all", "experiment=smoke", "split.duplicate_aware=false", "train.epochs=5",
        "train.patience=5", "check.lr_steps=40", "check.zero_input_epochs=1")
# Every stateful part of training at once: Nesterov SGD with weight decay, warmup, a
# plateau schedule that lowers the LR, label smoothing, clipping, the EMA of the weights,
# BatchNorm and dropout (whose RNG state must resume too), augmentation in the graph.
RECIPES = {
    "adamw-cosine-ema": ("train.optimizer=adamw", "train.weight_decay=0.05", "train.schedule=cosine",
                         "train.warmup=1", "train.ema=0.9", "model.hp.batchnorm=true", "train.augmentations=auto"),
    # ... and the weights kept for the ensemble (top epochs, SWA mean, EMA), resumed mid-fold too
    "sgd-plateau-smoothing": ("train.optimizer=sgd", "train.lr=0.05", "train.schedule=plateau",
                              "train.label_smoothing=0.1", "train.clip=1.0", "train.warmup=0.5",
                              "train.snapshots=2", "train.swa_epochs=3", "train.keep_ema=auto",
                              "ensemble.candidates=[fold,snapshots,swa,ema]"),
    # a backbone from a weights file: the head alone for an epoch, then the backbone at a tenth
    # of the LR (a per-variable LR in the optimizer's state), its BatchNorm frozen
    "pretrained-backbone": ("model=mobilenet_v3_small", "model.hp.weights={weights}", "model.hp.frozen_epochs=1",
                            "train.lr=3e-3"),
}


def _weights_file(path: Path) -> Path:
    """A MobileNetV3Small weights file (random weights: resuming does not need good ones)."""
    import keras

    keras.utils.set_random_seed(0)
    keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3),
                                        pooling="avg").save_weights(path)
    keras.backend.clear_session()
    return path


def _start(cwd, recipe):
    exe = str(Path(sys.executable).with_name("comp"))
    return subprocess.Popen([exe, *ARGS, *recipe], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _epoch(state):
    try:
        return json.loads(state.read_text())["epoch"]
    except (OSError, ValueError):
        return 0


def _kill_when(proc, condition, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended before the kill point: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("kill point never reached")


# Kill points: 0 in the middle of fold 1, 1 with fold 1 done and fold 2 half way, 2 after training.
# Both run in `pytest -m slow` (80-150 s each on 2 cores: five processes) so that CI's whole run
# stays under 20 minutes; the default suite resumes in-process after a fold that raised
# (tests/test_hostile.py) and from a full disk, and restores every stateful callback
# (tests/test_seams.py).
@pytest.mark.slow
@pytest.mark.parametrize("recipe,kills", [("adamw-cosine-ema", (1,)), ("sgd-plateau-smoothing", (0, 1, 2)),
                                          ("pretrained-backbone", (0, 1))])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, recipe, kills):
    weights = _weights_file(tmp_path / "backbone.weights.h5") if recipe == "pretrained-backbone" else None
    recipe = tuple(arg.format(weights=weights) for arg in RECIPES[recipe])
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    reference.mkdir()
    interrupted.mkdir()
    done = subprocess.run([str(Path(sys.executable).with_name("comp")), *ARGS, *recipe], cwd=reference,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr

    work = interrupted / "runs/digits/baseline.partial"
    kill_points = [
        lambda: _epoch(work / "fold_0/resume/state.json") >= 3,  # in the middle of fold 1
        lambda: _epoch(work / "fold_1/resume/state.json") >= 2,  # fold 1 done, fold 2 half way
        lambda: (interrupted / "runs/digits/baseline/stage.json").exists(),  # after training
    ]
    for condition in [kill_points[k] for k in kills]:
        _kill_when(_start(interrupted, recipe), condition)
    resumed = _start(interrupted, recipe)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert "[baseline] unchanged" in out or "finished earlier" in out

    for name in ("baseline/oof.npy", "ensemble/oof.npy", "predict/test_pred.npy"):
        np.testing.assert_array_equal(np.load(reference / "runs/digits" / name),
                                      np.load(interrupted / "runs/digits" / name))
    for fold in ("fold_0", "fold_1"):
        kept = reference / "runs/digits/baseline" / fold / "weights.npz"
        if "train.snapshots=2" in recipe:
            with np.load(kept) as ref, np.load(interrupted / "runs/digits/baseline" / fold / "weights.npz") as got:
                assert sorted(ref.files) == sorted(got.files) and len(ref.files) > 0
                for key in ref.files:
                    np.testing.assert_array_equal(ref[key], got[key])
    (ref_sub,) = (reference / "submissions").glob("*.csv")
    (int_sub,) = (interrupted / "submissions").glob("*.csv")
    assert ref_sub.name == int_sub.name and ref_sub.read_bytes() == int_sub.read_bytes()
    leftovers = [p for p in (interrupted / "runs").rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name]
    assert not leftovers  # no half-written file survives
    assert not list((interrupted / "runs/digits").glob("*.partial"))


def test_the_best_epochs_weights_survive_a_resume(tmp_path):
    """A fold killed after its best epoch must end with that epoch's weights, not the last's."""
    from comp.objective import Objective
    from comp.training.callbacks import BestWeights
    from comp.training.state import TrainingState

    best = BestWeights(Objective(higher_is_better=True))
    best.offer(0.9, 3, lambda: [np.full((2, 2), 3.0, "float32"), np.arange(4, dtype="float32")])
    TrainingState([best]).save(tmp_path, epoch=5)
    resumed = BestWeights(Objective(higher_is_better=True))  # what a new process starts with
    TrainingState([resumed]).restore(tmp_path)
    assert (resumed.score, resumed.epoch) == (0.9, 3)
    np.testing.assert_array_equal(resumed.weights[0], np.full((2, 2), 3.0))
    np.testing.assert_array_equal(resumed.weights[1], np.arange(4))
    assert not resumed.offer(0.8, 6, lambda: [])  # a worse epoch after the resume keeps them
    assert len(resumed.weights) == 2


def test_a_decayed_schedule_publishes_its_last_epoch_and_records_the_best(tmp_path):
    """Without early stopping the fold's weights are the last evaluated epoch's (chosen without
    its labels, so its score is honest); the best epoch is still known, for the gap."""
    from comp.objective import Objective
    from comp.training.callbacks import BestWeights
    from comp.training.state import TrainingState

    last = BestWeights(Objective(higher_is_better=True), keep_best=lambda: False)
    last.offer(0.9, 3, lambda: [np.full(2, 3.0, "float32")])
    last.offer(0.8, 4, lambda: [np.full(2, 4.0, "float32")])
    assert (last.epoch, last.chosen_epoch) == (3, 4)
    np.testing.assert_array_equal(last.weights[0], np.full(2, 4.0))
    TrainingState([last]).save(tmp_path, epoch=4)
    resumed = BestWeights(Objective(higher_is_better=True), keep_best=lambda: False)
    TrainingState([resumed]).restore(tmp_path)
    assert (resumed.score, resumed.epoch, resumed.last_epoch) == (0.9, 3, 4)
    np.testing.assert_array_equal(resumed.weights[0], np.full(2, 4.0))


@pytest.mark.slow  # ~2 minutes: three runs of a table's MLP
def test_a_killed_bag_of_the_network_beside_an_estimator_resumes_to_the_same_bag(tmp_path):
    """Stage bag's fallback (gradient boosting is seeded: the MLP beside it is bagged instead)
    killed while its second seed trains resumes to the same fold models and OOF predictions,
    its seeds still under the network's own folder."""
    from tests.test_table_portfolio import _digit_table

    args = ("run", "stage=bag", "experiment=smoke", f"competition={_digit_table(tmp_path)}", "baseline.variants=[mlp]",
            "ensemble.candidates=[fold,variants]", "bag.seeds=1", "train.epochs=6")
    exe = str(Path(sys.executable).with_name("comp"))
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    for folder in (reference, interrupted):
        folder.mkdir()
    done = subprocess.run([exe, *args], cwd=reference, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    state = interrupted / "runs/digit-table/bag.partial/mlp/seed_2/fold_1/resume/state.json"
    _kill_when(subprocess.Popen([exe, *args], cwd=interrupted, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True), lambda: _epoch(state) >= 2)
    resumed = subprocess.run([exe, *args], cwd=interrupted, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "nothing to bag; the network beside it instead" in resumed.stdout
    assert "[baseline] unchanged" in resumed.stdout  # the kill cost the bag's unfinished fold model only
    for run in (reference, interrupted):
        record = json.loads((run / "runs/digit-table/bag/stage.json").read_text())
        assert record["bagged"] == "baseline/mlp" and record["seeds"] == [2, 2]
    np.testing.assert_array_equal(np.load(reference / "runs/digit-table/bag/oof.npy"),
                                  np.load(interrupted / "runs/digit-table/bag/oof.npy"))
    assert not list((interrupted / "runs/digit-table").glob("*.partial"))
