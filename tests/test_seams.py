"""The small objects every layer shares: the objective, the clock's time boxes and the
budget's shares, the run directory's typed records, and the Trainer's stateful callbacks."""
import math

import numpy as np
import pytest

from comp.objective import Objective


def test_one_objective_compares_every_score():
    accuracy, rmse = Objective(higher_is_better=True), Objective(higher_is_better=False)
    assert accuracy.better(0.9, 0.8) and not accuracy.better(0.8, 0.8) and accuracy.better(0.1, None)
    assert rmse.better(0.8, 0.9) and not rmse.better(0.9, 0.8)
    assert not accuracy.better(0.8 + 1e-13, 0.8, margin=1e-12) and rmse.better(0.7, 0.8, margin=0.05)
    assert accuracy.best_index([0.5, 0.9, 0.9]) == 1 and rmse.best_index([0.5, 0.3, 0.3]) == 1  # ties: the first
    assert rmse.best(["a", "b"], key={"a": 2.0, "b": 1.0}.get) == "b"
    assert accuracy.ranked([0.2, 0.7, 0.5]) == [0.7, 0.5, 0.2] and rmse.ranked([0.2, 0.7, 0.5]) == [0.2, 0.5, 0.7]
    assert accuracy.gain(0.9, 0.8) == pytest.approx(0.1) and rmse.gain(0.8, 0.9) == pytest.approx(0.1)
    np.testing.assert_allclose(rmse.gain(np.array([1.0, 2.0]), np.array([2.0, 2.0])), [1.0, 0.0])
    assert (accuracy.direction, rmse.direction) == ("max", "min")


def test_time_boxes_split_and_share_one_clock(monkeypatch):
    from comp import clock
    from comp.budget import Budget, Share

    now = {"t": 1000.0}
    monkeypatch.setattr(clock, "now", lambda: now["t"])
    box = clock.TimeBox.of(100.0)
    assert box.limited and box.remaining() == 100.0 and box.hard_end == math.inf
    now["t"] += 40.0
    first = box.split(3)  # the next of 3 equal shares of the 60 s left
    assert first.end == pytest.approx(1060.0) and first.start == 1040.0
    assert box.share(0.5).end == pytest.approx(1070.0) and box.within(5.0).end == 1045.0
    assert box.hardened().hard_end == box.end and not clock.UNLIMITED.limited
    now["t"] += 100.0
    assert box.split(2).end == now["t"]  # past its end: nothing left, never a time in the past

    now["t"] = 0.0
    budget = Budget(1000.0)  # training ends 100 s before the budget (10%, at least 15 s)
    plan = budget.plan({"check": Share(of_budget=0.1), "baseline": Share(training=0.4),
                        "tune": Share(training=0.35), "predict": None})
    assert "baseline 53% (~480s), tune 47% (~420s)" in plan
    assert budget.box("check", Share(of_budget=0.1)).end == 100.0
    assert budget.box("baseline", Share(training=0.4)).end == pytest.approx(900 * 0.4 / 0.75)
    assert budget.box("baseline", Share(training=0.4)).end == pytest.approx(480.0)  # fixed when it starts
    now["t"] = 200.0  # the baseline finished early: its time goes to the next
    budget.finished("baseline")
    assert budget.box("tune", Share(training=0.35)).end == pytest.approx(900.0)
    assert budget.box("ensemble", Share(of_remaining=0.5)).end == pytest.approx(600.0)
    assert budget.box("predict", None).end == 1000.0
    assert not Budget(None).box("baseline", Share(training=0.4)).limited


def test_a_command_s_budget_counts_from_the_process_start():
    """Importing TensorFlow takes seconds before comp's code runs: the console script's budget
    must count them, so the clock's start is the process's, not the import of comp."""
    import subprocess
    import sys

    code = ("import time; began = time.monotonic(); time.sleep(1.5); from comp import clock; "
            "print(began - clock.process_start())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    ahead = float(done.stdout)  # how long before the script's first line the process started
    assert 0.0 <= ahead < 1.0, done.stderr


def test_records_round_trip_and_name_what_a_prediction_reads():
    from comp.records import EnsembleResult, Member, ModelRef, Result, members_of, result_of, source_of

    baseline = {"score": 0.9, "metric": "accuracy", "higher_is_better": True, "fold_scores": [0.8, 1.0], "folds": 2,
                "decoding": {}, "fold_models": True, "model": {"name": "small_cnn", "hp": {}, "augmentations": ["shift"]},
                "input_shape": [8, 8, 1], "lr": 0.003, "plan": [None, None],
                "variants": {"mlp": {"score": 0.7, "fold_scores": [0.7], "model": {"name": "mlp"}, "decoding": {},
                                     "folds": 2, "scores": {}}}}
    result = result_of(baseline)
    assert type(result) is Result and result.to_dict() == baseline
    assert result.variants["mlp"].model == {"name": "mlp"} and result.extra["lr"] == 0.003
    (member,) = members_of("baseline", result, ["shift_right"])
    assert member.models == [[ModelRef("baseline/fold_0")], [ModelRef("baseline/fold_1")]]
    assert member.augmentations == ["shift"] and member.input_shape == [8, 8, 1] and source_of("baseline", result) == "baseline"
    swa = Member("baseline:swa", "baseline", "swa", 0.5, [], ["shift"], None,
                 [[ModelRef("baseline/fold_0", "ensemble/candidates/baseline-swa/fold_0", "swa")]])
    ensemble = {"score": 0.95, "metric": "accuracy", "members": [swa.to_dict()], "source": "ensemble", "blend": {}}
    read = result_of(ensemble)
    assert isinstance(read, EnsembleResult) and read.members == [swa] and read.to_dict() == ensemble
    assert swa.stages == {"baseline", "ensemble"} and members_of("ensemble", read, []) == [swa]
    assert Result.from_dict({"score": 0.5, "metric": "rmse"}).fold_models  # a stage's record says when it has none


def test_a_stateful_callback_resumes_with_the_fold(tmp_path):
    """A callback with a name is saved with the model after every epoch and restored before
    on_train_begin: a second fit from the same state continues its count."""
    import keras
    import pandas as pd
    import tensorflow as tf
    from sklearn.datasets import load_diabetes

    from comp.tasks import make_task
    from comp.tasks.base import TaskSource
    from comp.training.callbacks import Callback
    from comp.training.spec import TrainSpec
    from comp.training.trainer import Trainer
    from tests.conftest import PLAIN_TRAINING

    x, target = load_diabetes(return_X_y=True)
    x = x.astype("float32")
    frame = pd.DataFrame({"y": target.astype(str)})
    task = make_task("regression", TaskSource(frame, pd.DataFrame({"id": ["a"], "y": ["0"]}), "id", ("y",), {}))
    y = task.encode(frame)

    class Killed(Exception):
        pass

    class Count(Callback):
        name = "count"

        def __init__(self, kill_at=None):
            super().__init__()
            self.seen, self.began, self.kill_at = [], [], kill_at

        def on_train_begin(self, logs=None):
            self.began.append(len(self.seen))

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == self.kill_at:  # as a kill after the previous epoch's state was saved
                raise Killed

        def on_epoch_end(self, epoch, logs=None):
            self.seen.append((epoch, round(logs["lr"], 8), "val_score" in logs))

        def get_state(self):
            return {"seen": self.seen}

        def set_state(self, state):
            self.seen = [tuple(s) for s in state["seen"]]

    def build():
        inputs = keras.Input((x.shape[1],))
        return keras.Model(inputs, keras.layers.Dense(1)(inputs))

    def fit(count, state_dir):
        trainer = Trainer(tf.distribute.get_strategy(), build, task, TrainSpec(lr=1e-2, epochs=4, **PLAIN_TRAINING),
                          1e-2, steps_per_epoch=6)
        return trainer.fit((x[:350], y[:350]), (x[350:], y[350:]), epochs=4, global_batch=64, seed=0,
                           state_dir=state_dir, callbacks=[count])

    whole = Count()
    fit(whole, tmp_path / "whole")
    first = Count(kill_at=2)
    with pytest.raises(Killed):
        fit(first, tmp_path / "resume")
    assert [e for e, _, scored in first.seen] == [0, 1] and all(scored for *_, scored in first.seen)
    second = Count()
    result = fit(second, tmp_path / "resume")  # resumes after epoch 2
    assert result.resumed_from == 2 and second.began == [2]
    assert second.seen == whole.seen  # the same epochs, the same LRs, as one uninterrupted fit


def test_a_native_fit_uses_the_cores_that_are_free():
    from threadpoolctl import threadpool_info

    import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime the limit applies to)
    from comp.threads import free_cores, native_threads

    def counters(*snapshots):
        it = iter(snapshots)
        return lambda: next(it)

    # 4 cores; over the sample, 25 of 100 jiffies busy (one core's worth) -> 3 free
    assert free_cores(0.0, cores=4, read=counters((0.0, 0.0), (25.0, 100.0))) == 3
    assert free_cores(0.0, cores=4, read=counters((0.0, 0.0), (65.0, 100.0))) == 1  # 2.6 busy: 1 free
    assert free_cores(0.0, cores=2, read=counters((0.0, 0.0), (100.0, 100.0))) == 1  # never none
    assert free_cores(0.0, cores=2, read=counters((0.0, 0.0), (0.0, 100.0))) == 2

    def unreadable():
        raise OSError("no /proc")
    assert free_cores(0.0, cores=8, read=unreadable) == 8  # cannot tell: all of them

    openmp = [p for p in threadpool_info() if p["user_api"] == "openmp"]
    assert openmp, "scikit-learn's OpenMP runtime is not loaded"
    with native_threads(1) as used:
        assert used == 1 and all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "openmp")
    assert max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp") == openmp[0]["num_threads"]
