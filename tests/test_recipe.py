"""The training recipe's parts: schedules, budget plans, optimizers, verdicts, and a budget
run whose schedule ends decayed."""

import keras
import numpy as np
import pytest

from comp.objective import Objective
from comp.training.callbacks import plan_epochs
from comp.training.optimizers import build_optimizer, exclude_from_decay
from comp.training.schedules import FINAL_FRACTION, Plateau, PlannedSchedule
from comp.training.verdicts import NO_PROBLEMS, diagnose
from tests.conftest import PLAIN_TRAINING


def _lrs(schedule, steps):
    return np.array([float(schedule(s)) for s in range(steps)])


def test_cosine_warms_up_then_decays_to_its_end_and_can_be_replanned():
    s = PlannedSchedule(1e-2, "cosine", total_steps=100, warmup_steps=10)
    lr = _lrs(s, 101)
    assert lr[0] == pytest.approx(1e-3) and lr[9] == pytest.approx(1e-2)  # linear warmup over 10 steps
    assert np.all(np.diff(lr[10:]) <= 1e-12)  # then only down
    assert lr[100] == pytest.approx(1e-2 * FINAL_FRACTION, rel=1e-3)  # decayed at the end, not cut
    assert lr[99] < 0.02 * 1e-2
    s.plan(50)  # a budget plan halves the run: the same curve, squeezed
    assert float(s(50)) == pytest.approx(1e-2 * FINAL_FRACTION, rel=1e-3)
    assert float(s(30)) < lr[30]


def test_a_short_planned_schedule_warms_up_for_a_fifth_of_it_and_still_decays():
    """A budget that fits one epoch of 10 steps once warmed up for all of it (train.warmup=1)
    and never decayed: planned that short, the warmup takes at most a fifth of the steps and
    the rest decays to the floor. A long plan keeps the warmup asked for."""
    s = PlannedSchedule(1.0, "cosine", total_steps=400, warmup_steps=10)
    s.plan(10)
    lr = _lrs(s, 11)
    assert lr[0] == pytest.approx(0.5) and lr[1] == pytest.approx(1.0)  # two steps of warmup
    assert lr[10] == pytest.approx(FINAL_FRACTION, rel=1e-3) and np.all(np.diff(lr[2:]) < 0)
    s.plan(300)
    assert int(s.warmup.numpy()) == 10 and float(s(4)) == pytest.approx(0.5)


def test_a_budgeted_fit_plans_inside_its_first_epoch(monkeypatch):
    """From its first steps (the traced first one left out), a fit plans its schedule before
    the first epoch is spent warming up: where 1.7 epochs fit, two, the second cut to the
    steps that fit (rounded down to one, a fold's time went unused); where not one fits, the
    first epoch's steps that do; where all fit, the warmup asked for."""
    from comp.training.callbacks import BudgetPlan

    schedule = PlannedSchedule(1.0, "cosine", total_steps=40 * 50, warmup_steps=50)
    plan = BudgetPlan(100.0, 40, schedule, steps_per_epoch=50)
    plan._t0 = 0.0
    plan.early([5.0, 1.0, 1.0, 1.0], steps=50)  # ~57.5 s an epoch, then 95% of the 42.5 s left: 0.7 more
    assert plan.epochs == 2 and plan.steps_of(0) == 0 and plan.steps_of(1) == 35
    assert int(schedule.total_steps.numpy()) == 85 and int(schedule.warmup.numpy()) == 17
    plan.early([5.0, 0.01, 0.01, 0.01], steps=50)  # under a second an epoch: all 40 fit, the warmup as asked
    assert plan.epochs == 40 and plan.steps_of(39) == 0
    assert int(schedule.total_steps.numpy()) == 40 * 50 and int(schedule.warmup.numpy()) == 50
    from comp import clock

    monkeypatch.setattr(clock, "now", lambda: 8.0)  # the four steps took 8 s
    short = BudgetPlan(30.0, 40, schedule, steps_per_epoch=50)
    short._t0 = 0.0
    short.early([5.0, 1.0, 1.0, 1.0], steps=50)  # not one epoch fits: the steps that do, decayed within them
    # 95% of the 22 s left, less the validation pass a whole epoch has (0.15 x 50 steps of 1 s): 13 more steps
    assert short.epochs == 1 and short.steps_of(0) == 4 + 13
    assert int(schedule.total_steps.numpy()) == 17 and int(schedule.warmup.numpy()) == 3
    settled = BudgetPlan(1000.0, 40, schedule, steps_per_epoch=50)
    settled.data.update(epochs=4, last_steps=30, epoch_seconds=10.0)
    settled._fit(3, 10.0, 100.0, at_most=4)  # a whole fourth epoch would fit now: settled, it stays 30 steps
    assert settled.epochs == 4 and settled.steps_of(3) == 30
    settled.parts = False  # several workers: no part epochs
    settled.data.update(epochs=40, last_steps=0)
    settled._fit(1, 10.0, 17.0)
    assert settled.epochs == 2 and settled.steps_of(1) == 0


def test_onecycle_step_and_plateau_shapes():
    onecycle = _lrs(PlannedSchedule(1.0, "onecycle", 100), 100)
    assert onecycle[0] == pytest.approx(0.1, abs=0.01) and onecycle.argmax() in range(28, 32)
    assert onecycle[-1] < 0.02
    step = _lrs(PlannedSchedule(1.0, "step", 100), 100)
    assert step[40] == 1.0 and step[60] == pytest.approx(0.1) and step[90] == pytest.approx(0.01)
    s = PlannedSchedule(1.0, "plateau", 100)
    plateau = Plateau(s, Objective(higher_is_better=True), patience=2, factor=0.5)
    for epoch, score in enumerate((0.5, 0.6, 0.6, 0.55)):  # two epochs without improvement
        plateau.on_epoch_end(epoch, {"val_score": score})
    assert float(s(0)) == pytest.approx(0.5) and plateau.get_state() == {"best": 0.6, "wait": 0}


def test_plan_fits_the_time_left_and_only_shrinks_later():
    assert plan_epochs(60, done=1, epoch_seconds=2.0, seconds_left=40.0) == 1 + 19  # 95% of 40 s
    assert plan_epochs(60, done=1, epoch_seconds=0.1, seconds_left=40.0) == 60  # all fit
    assert plan_epochs(60, done=5, epoch_seconds=10.0, seconds_left=5.0) == 5  # nothing more fits
    assert plan_epochs(60, done=3, epoch_seconds=1.0, seconds_left=100.0, at_most=20) == 20


def test_adamw_decays_kernels_not_biases():
    dense = keras.layers.Dense(2)
    dense.build((None, 3))
    opt = build_optimizer("adamw", 0.1, weight_decay=0.5, clip=1.0, ema=0.9)
    exclude_from_decay(opt, dense.trainable_variables)
    opt.build(dense.trainable_variables)
    dense.bias.assign(np.ones(2, "float32"))
    kernel = dense.kernel.numpy().copy()
    opt.apply_gradients([(np.zeros((3, 2), "float32"), dense.kernel), (np.zeros(2, "float32"), dense.bias)])
    np.testing.assert_allclose(dense.bias.numpy(), 1.0)  # zero gradient, no decay
    np.testing.assert_allclose(dense.kernel.numpy(), kernel * (1 - 0.1 * 0.5), rtol=1e-5)
    assert opt.use_ema and opt.global_clipnorm == 1.0
    sgd = build_optimizer("sgd", 0.1, weight_decay=1e-4)
    assert sgd.nesterov and sgd.momentum == 0.9
    # The periodic embeddings' frequencies and per-column biases are not decayed; their kernel is.
    from comp.layers import PeriodicEmbedding

    periodic = PeriodicEmbedding(4, 2)
    periodic.build((None, 3))
    opt = build_optimizer("adamw", 0.1, weight_decay=0.5)
    exclude_from_decay(opt, periodic.trainable_variables)
    opt.build(periodic.trainable_variables)
    before = {v.name: v.numpy().copy() for v in periodic.trainable_variables}
    opt.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in periodic.trainable_variables])
    for v in periodic.trainable_variables:
        np.testing.assert_allclose(v.numpy(), before[v.name] * (0.95 if v.name == "kernel" else 1.0), rtol=1e-5)


def test_still_improving_when_stopped_is_named():
    rows = [{"epoch": e, "val_score": s, "loss": 1.0 / e} for e, s in enumerate([0.5, 0.6, 0.7, 0.75, 0.8], 1)]
    found = diagnose(rows, accuracy=None, metric="roc_auc")
    assert found[0].startswith("still improving when stopped: val roc_auc 0.6 at epoch 2 -> 0.8 at epoch 5")
    flat = [{**r, "val_score": 0.9} for r in rows]
    assert diagnose(flat, accuracy=None) == [NO_PROBLEMS]
    falling_error = [{**r, "val_score": 10 - r["epoch"]} for r in rows]  # an error still falling
    assert diagnose(falling_error, accuracy=None, higher_is_better=False)[0].startswith("still improving")


def _diabetes():
    """scikit-learn's diabetes table as a regression task: (x float32, encoded y, task)."""
    import pandas as pd
    from sklearn.datasets import load_diabetes

    from comp.tasks import make_task
    from comp.tasks.base import TaskSource

    x, target = load_diabetes(return_X_y=True)
    frame = pd.DataFrame({"y": target.astype(str)})
    task = make_task("regression", TaskSource(frame, pd.DataFrame({"id": ["a"], "y": ["0"]}), "id", ("y",), {}))
    return x.astype("float32"), task.encode(frame), task


def test_one_traced_step_serves_every_batch_and_epoch():
    """The last, smaller batch of each epoch reuses the step traced for the full ones (a
    retrace per fold costs seconds and, on a GPU, a recompile)."""
    import keras
    import tensorflow as tf

    from comp.training.spec import TrainSpec
    from comp.training.trainer import Trainer

    x, y, task = _diabetes()
    fit, val = slice(0, 350), slice(350, None)  # 350 rows: 5 batches of 64 and one of 30

    def build():
        inputs = keras.Input((x.shape[1],))
        return keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(16, activation="relu")(inputs)))

    trainer = Trainer(tf.distribute.get_strategy(), build, task, TrainSpec(lr=1e-2, epochs=4, patience=4, **PLAIN_TRAINING), 1e-2,
                      steps_per_epoch=6)
    result = trainer.fit((x[fit], y[fit]), (x[val], y[val]), epochs=4, global_batch=64, seed=0)
    assert trainer._train_step.experimental_get_tracing_count() == 1
    assert result.history["loss"][-1] < result.history["loss"][0]


def test_a_hard_deadline_stops_inside_an_epoch(monkeypatch):
    """A search's trial must not run past the search's end (at 100,000 images one epoch of a
    wide trial took 1,032 s of a 739-s search): past ``hard_deadline`` the running epoch is
    dropped and the best finished one stands; with none finished, nothing can be scored."""
    import keras
    import tensorflow as tf

    from comp import clock
    from comp.training import trainer as loop
    from comp.training.spec import TrainSpec

    x, y, task = _diabetes()
    fit, val = slice(0, 350), slice(350, None)

    def build():
        inputs = keras.Input((x.shape[1],))
        return keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(16, activation="relu")(inputs)))

    def train(hard_deadline, hooks=()):
        trainer = loop.Trainer(tf.distribute.get_strategy(), build, task, TrainSpec(lr=1e-2, epochs=5, patience=5, **PLAIN_TRAINING),
                               1e-2, steps_per_epoch=6)
        return trainer, trainer.fit((x[fit], y[fit]), (x[val], y[val]), epochs=5, global_batch=64, seed=0,
                                    hard_deadline=hard_deadline, callbacks=hooks)

    with pytest.raises(loop.OutOfTime, match="the deadline passed .* before its first epoch of 6 steps finished"):
        train(clock.now())

    skipped = {"seconds": 0.0}
    monkeypatch.setattr(clock, "now", lambda real=clock.now: real() + skipped["seconds"])

    # The clock jumps an hour once epoch 2 has ended: epoch 3 does not start.
    ends = []
    jump = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: skipped.update(seconds=3600.0 * (epoch >= 1)),
                                          on_train_end=lambda logs: ends.append(logs["complete"]))
    trainer, result = train(clock.now() + 600, [jump])
    assert result.epochs_run == 2 and result.stopped_by_budget and len(result.history["loss"]) == 2
    assert ends == [True]  # the model holds epoch 2's weights

    # The clock jumps while epoch 3's second batch is drawn: the epoch stops at its third step.
    skipped["seconds"] = 0.0
    distribute = loop.Trainer.distribute

    def counting(self, dataset):
        batches = distribute(self, dataset)
        for n, batch in enumerate(batches, start=1):
            if n == 6 * 2 + 2:
                skipped["seconds"] = 3600.0
            yield batch

    monkeypatch.setattr(loop.Trainer, "distribute", counting)
    ends = []
    trainer, result = train(clock.now() + 600, [keras.callbacks.LambdaCallback(
        on_train_end=lambda logs: ends.append(logs["complete"]))])
    assert result.epochs_run == 2 and result.stopped_by_budget and len(result.history["loss"]) == 2
    assert ends == [False]  # part of epoch 3 moved the weights: no hook may take them for epoch 2's
    assert result.best_epoch in (1, 2)


def test_xla_auto_trains_without_xla_when_the_step_does_not_compile(monkeypatch, capsys):
    """train.xla=auto on a GPU compiles the step; a model XLA cannot compile (here an op
    that runs Python) trains without it, with one notice, instead of failing the fold."""
    import keras
    import tensorflow as tf

    from comp.training import trainer as loop
    from comp.training.spec import TrainSpec

    x, y, task = _diabetes()

    def build():
        inputs = keras.Input((x.shape[1],))
        hidden = keras.layers.Lambda(
            lambda t: tf.ensure_shape(tf.numpy_function(np.tanh, [t], tf.float32, stateful=False), t.shape),
            output_shape=(x.shape[1],))(inputs)
        return keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(16, activation="relu")(hidden)))

    monkeypatch.setattr(loop, "use_xla", lambda setting, model: True)  # as on a GPU
    trainer = loop.Trainer(tf.distribute.get_strategy(), build, task,
                           TrainSpec(lr=1e-2, epochs=3, xla="auto", patience=3, **PLAIN_TRAINING), 1e-2, steps_per_epoch=6)
    assert trainer.xla
    result = trainer.fit((x[:350], y[:350]), (x[350:], y[350:]), epochs=3, global_batch=64, seed=0)
    assert not trainer.xla and "notice: train.xla=auto: the train step does not compile with XLA" in capsys.readouterr().out
    assert result.history["loss"][-1] < result.history["loss"][0]


def test_xla_auto_follows_keras_rule_and_knows_affine_augmentation_does_not_compile(monkeypatch):
    import keras
    import tensorflow as tf

    from comp.training.xla import use_xla

    def model(*layers):
        inputs = keras.Input((8, 8, 1))
        x = inputs
        for layer in layers:
            x = layer(x)
        return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))

    from comp.training import xla as loop

    plain, rotating = model(keras.layers.Rescaling(1 / 255)), model(keras.layers.RandomRotation(0.1))
    assert not use_xla("auto", plain)  # this machine has no GPU
    assert use_xla("on", rotating) and not use_xla("off", plain)
    real = tf.config.list_logical_devices
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: ["/gpu:0"] if kind == "GPU" else real(kind))
    monkeypatch.setattr(loop, "op_determinism", lambda: True)
    assert not use_xla("auto", plain)  # comp's default: deterministic ops, which XLA cannot always compile
    monkeypatch.setattr(loop, "op_determinism", lambda: False)
    assert use_xla("auto", plain)
    assert not use_xla("auto", rotating)  # ImageProjectiveTransformV3 has no XLA kernel
