"""Diagnostics while training (docs/recipe.md 4): per-epoch logs, verdicts and the BatchNorm fix."""
import json
import re

import cv2
import keras
import numpy as np
import pandas as pd
import pytest

from comp.training.batchnorm import auto_momentum, resolve_momentum, set_momentum
from comp.training.verdicts import NO_PROBLEMS, diagnose
from tests.conftest import TEXTBOOK

BASELINE = "runs/digits/baseline"


def _diagnosis(out: str, fold: int = 1) -> list[str]:
    return re.findall(rf"^\[baseline\] fold {fold}/\d+ diagnosis: (.*)$", out, re.MULTILINE)


def test_smoke_run_writes_csv_tensorboard_and_learning_curve(comp, workdir):
    code, out, err = comp("run", "stage=baseline", *TEXTBOOK, "train.lr=3e-4")
    assert code == 0, err
    fold = workdir / BASELINE / "fold_0"
    frame = pd.read_csv(fold / "diagnostics.csv")
    assert list(frame["epoch"]) == [1, 2, 3]  # smoke: 3 epochs, no early stop on digits
    for column in ("loss", "val_loss", "accuracy", "val_accuracy", "val_score", "lr"):  # the loop's: every epoch
        assert np.isfinite(frame[column]).all(), column
    # probe_every=auto: the first and last epochs are always probed, the one between only if
    # the probes' share of the training time allows it (on 0.3-s epochs it does not)
    probed = frame["probed"] == 1
    assert probed.iloc[0] and probed.iloc[-1]
    for column in ("grad_norm", "update_ratio_median", "update_ratio_max", "act_var_first", "act_var_last",
                   "dead_relu_max", "probe_accuracy"):
        assert np.isfinite(frame.loc[probed, column]).all() and frame.loc[~probed, column].isna().all(), column
    assert {"update_ratio/conv2d", "act_var/conv2d_3", "dead_relu/conv2d_3", "grad_norm/conv2d"} <= set(frame)
    assert frame.select_dtypes("number").shape == frame.shape  # all numbers
    history = pd.read_csv(fold / "history.csv")
    np.testing.assert_allclose(frame["val_accuracy"], history["val_accuracy"])
    np.testing.assert_allclose(frame["lr"], 3e-4, rtol=1e-6)
    # Adam at 3e-4: the update/weight ratio sits near the healthy 1e-3 (the last epoch's too,
    # measured after training from the weights it started with), no ReLU is dead.
    assert 1e-4 < frame["update_ratio_median"].iloc[0] < 1e-2 and 1e-4 < frame["update_ratio_median"].iloc[-1] < 1e-2
    assert frame["dead_relu_max"].max() < 0.5 and frame.loc[probed, "grad_norm"].gt(0).all()

    events = list((fold / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    import tensorflow as tf

    tags = {v.tag for e in tf.compat.v1.train.summary_iterator(str(events[0])) for v in e.summary.value}
    assert {"weights/conv2d", "gradients/conv2d", "grad_norm"} <= tags  # per-layer histograms beside the scalars
    image = cv2.imread(str(fold / "learning_curve.png"))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100

    record = json.loads((fold / "diagnostics.json").read_text())
    assert record["epochs"] == 3 and record["steps_per_epoch"] == 12  # 718 rows / batch 64
    assert record["probe_every"] == "auto" and record["probed_epochs"] == list(frame.loc[probed, "epoch"])
    assert record["batchnorm"]["layers"] == 0 and record["relu_layers"] == ["conv2d", "conv2d_1", "conv2d_2",
                                                                           "conv2d_3"]
    assert record["verdicts"] == [NO_PROBLEMS] == _diagnosis(out, 1)
    assert json.loads((fold / "done.json").read_text())["diagnosis"] == [NO_PROBLEMS]


@pytest.mark.parametrize("lr, verdict", [("0.5", "LR likely too high"), ("1e-7", "LR likely too low")])
def test_a_bad_learning_rate_is_named(comp, workdir, lr, verdict):
    code, out, err = comp("run", "stage=baseline", *TEXTBOOK, f"train.lr={lr}", "train.epochs=2")
    assert code == 0, err
    for fold in (1, 2):
        found = _diagnosis(out, fold)
        assert any(v.startswith(verdict) for v in found), out
        assert NO_PROBLEMS not in found
    if verdict.endswith("high"):  # Adam at 0.5 kills the ReLUs on digits
        assert any(v.startswith("many dead ReLUs") for v in _diagnosis(out, 1))
    record = json.loads((workdir / BASELINE / "fold_0/diagnostics.json").read_text())
    assert any(v.startswith(verdict) for v in record["verdicts"])


@pytest.mark.slow  # two baselines (~30 s on 2 cores); auto_momentum's arithmetic is tested below
def test_batchnorm_momentum_fix_lets_validation_track_training(comp, workdir):
    """small_cnn with BatchNorm on digits (12 steps per epoch): with Keras's momentum 0.99
    the moving statistics lag, validation stays near chance while training is good;
    train.bn_momentum=auto (the default, 0.67 here) makes validation track training."""
    args = ("stage=baseline", *TEXTBOOK, "model.hp.batchnorm=true", "train.lr=3e-3", "train.probe_every=1")

    code, out, err = comp("run", *args, "train.bn_momentum=0.99")
    assert code == 0, err
    lagging = pd.read_csv(workdir / BASELINE / "fold_0/diagnostics.csv")
    assert lagging["val_accuracy"].iloc[0] < 0.3  # chance: 0.1
    assert lagging["accuracy"].iloc[1] > 0.8
    assert lagging["val_accuracy"].iloc[1] < lagging["accuracy"].iloc[1] - 0.3
    # Inference mode on the very training rows is as bad: the moving statistics, not the data.
    assert lagging["probe_accuracy"].iloc[1] < lagging["accuracy"].iloc[1] - 0.3
    assert list(lagging["probed"]) == [1, 1, 1]  # train.probe_every=1
    found = _diagnosis(out, 1)
    assert any("BatchNorm" in v and "train.bn_momentum=auto" in v for v in found), out
    assert not any(v.startswith("overfitting") for v in found)  # the lag is not overfitting
    record = json.loads((workdir / BASELINE / "fold_0/diagnostics.json").read_text())
    assert record["batchnorm"]["momentum"] == [0.99] and record["batchnorm"]["layers"] == 4

    code, out, err = comp("run", *args)
    assert code == 0, err
    fixed = pd.read_csv(workdir / BASELINE / "fold_0/diagnostics.csv")
    np.testing.assert_allclose(fixed["loss"], lagging["loss"], rtol=1e-5)  # same training, other statistics
    assert fixed["val_accuracy"].iloc[0] > 0.7
    assert fixed["val_accuracy"].iloc[1] > 0.5
    assert abs(fixed["val_accuracy"].iloc[1] - fixed["accuracy"].iloc[1]) < 0.15
    assert not any("BatchNorm" in v for v in _diagnosis(out, 1) + _diagnosis(out, 2)), out
    record = json.loads((workdir / BASELINE / "fold_0/diagnostics.json").read_text())
    assert record["batchnorm"]["setting"] == "auto"
    assert record["batchnorm"]["momentum"] == [pytest.approx(auto_momentum(12))] == [pytest.approx(2 / 3)]


# -- units -----------------------------------------------------------------------------------
def _records(n=8, **columns):
    base = {"epoch": np.arange(1, n + 1), "loss": np.linspace(2.0, 0.2, n), "val_loss": np.linspace(2.0, 0.3, n),
            "accuracy": np.linspace(0.5, 0.95, n), "val_accuracy": np.linspace(0.5, 0.93, n),
            "probe_accuracy": np.linspace(0.55, 0.96, n), "grad_norm": np.full(n, 1.0),
            "update_ratio/conv2d": np.full(n, 1e-3), "update_ratio/dense": np.full(n, 2e-3),
            "grad_norm/conv2d": np.full(n, 0.5), "grad_norm/dense": np.full(n, 0.8),
            "act_var/conv2d": np.full(n, 0.1), "act_var/conv2d_1": np.full(n, 0.08),
            "dead_relu/conv2d": np.zeros(n), "dead_relu/conv2d_1": np.zeros(n)}
    base.update({k: np.asarray(v, dtype=float) for k, v in columns.items()})
    return pd.DataFrame(base).to_dict("records")


def test_verdicts_on_healthy_records_see_no_problem():
    assert diagnose(_records(), num_classes=10) == [NO_PROBLEMS]


def test_overfitting_verdict_names_the_epoch_it_started():
    val = [0.5, 0.6, 0.7, 0.75, 0.78, 0.74, 0.72, 0.7]
    train = [0.5, 0.62, 0.74, 0.82, 0.9, 0.93, 0.96, 0.98]  # gap > 0.1 from epoch 5 on
    found = diagnose(_records(accuracy=train, val_accuracy=val, probe_accuracy=train), num_classes=10)
    assert found == [f for f in found if f.startswith("overfitting")] and len(found) == 1
    assert "since epoch 5" in found[0] and "gap 0.28" in found[0] and "largest 0.28 at epoch 8" in found[0]
    # Two epochs of gap are not enough.
    short = diagnose(_records(accuracy=train[:7], val_accuracy=val[:5] + [0.9, 0.95], n=7), num_classes=10)
    assert short == [NO_PROBLEMS]


def test_exploding_and_vanishing_gradients():
    found = diagnose(_records(grad_norm=[1, 2, 5, 40, 300, 2e3, np.nan, np.nan]), num_classes=10)
    assert any(f.startswith("exploding gradients") and "epoch 7" in f for f in found)
    found = diagnose(_records(grad_norm=[1, 3, 10, 50, 120, 200, 150, 160]), num_classes=10)
    assert any(f.startswith("exploding gradients") and "200 at epoch 6" in f for f in found)
    found = diagnose(_records(grad_norm=np.full(8, 1e-8), accuracy=np.full(8, 0.1), val_accuracy=np.full(8, 0.1),
                              probe_accuracy=np.full(8, 0.1)), num_classes=10)
    assert any(f.startswith("vanishing gradients") for f in found)


def test_lr_dead_relu_and_collapse_verdicts():
    high = diagnose(_records(**{"update_ratio/conv2d": [3e-2] * 8, "update_ratio/dense": [5e-2] * 8}))
    assert high[0].startswith("LR likely too high") and "2 of 2 layers" in high[0]
    low = diagnose(_records(**{"update_ratio/conv2d": [1e-7] * 8, "update_ratio/dense": [3e-7] * 8}))
    assert low[0].startswith("LR likely too low")
    dead = diagnose(_records(**{"dead_relu/conv2d_1": [0.2] * 7 + [0.75]}))
    assert dead == [d for d in dead if d.startswith("many dead ReLUs")] and "conv2d_1 75%" in dead[0]
    collapse = diagnose(_records(**{"act_var/conv2d_1": [1e-5] * 8}))
    assert collapse[0].startswith("activation variance collapses through depth")


def test_verdicts_read_the_probe_only_where_it_ran():
    """probe_every=auto leaves the probe's columns empty on the epochs between probes: no rule
    may take a missing gradient norm for an exploding one, and the last-epoch rules read the
    last probed epoch."""
    n = 8
    probed = np.array([1, 0, 0, 1, 0, 0, 0, 1], dtype=float)
    probe_columns = ("probe_accuracy", "grad_norm", "update_ratio/conv2d", "update_ratio/dense", "grad_norm/conv2d",
                     "grad_norm/dense", "act_var/conv2d", "act_var/conv2d_1", "dead_relu/conv2d", "dead_relu/conv2d_1")
    records = pd.DataFrame(_records(n))
    records["probed"] = probed
    records.loc[probed == 0, list(probe_columns)] = np.nan
    assert diagnose(records.to_dict("records"), num_classes=10) == [NO_PROBLEMS]
    records.loc[7, "dead_relu/conv2d_1"] = 0.8
    dead = diagnose(records.to_dict("records"), num_classes=10)
    assert len(dead) == 1 and dead[0].startswith("many dead ReLUs at epoch 8") and "conv2d_1 80%" in dead[0]
    records.loc[3, "grad_norm"] = np.nan  # a probed epoch whose gradient is not finite
    assert any(f.startswith("exploding gradients") and "from epoch 4" in f
               for f in diagnose(records.to_dict("records"), num_classes=10))

    # A fold resumed from a diagnostics.csv written before the probe was scheduled: its rows
    # have no probed value and were all probed; the first-epoch rules still read epoch 1.
    resumed = pd.DataFrame(_records(n, **{"act_var/conv2d_1": [1e-5] + [0.08] * 7}))
    resumed["probed"] = [np.nan] * 4 + [0, 0, 0, 1]
    resumed.loc[[4, 5, 6], list(probe_columns)] = np.nan
    found = diagnose(resumed.to_dict("records"), num_classes=10)
    assert len(found) == 1 and found[0].startswith("activation variance collapses") and "at epoch 1" in found[0]

    # Inference-mode lag on probed epochs while validation sits at chance on an unprobed one:
    # the message quotes a probed score, never nan.
    lagging = pd.DataFrame(_records(n, accuracy=np.full(n, 0.9), val_accuracy=[0.5] * 6 + [0.1, 0.5],
                                    probe_accuracy=np.full(n, 0.3)))
    lagging["probed"] = probed
    lagging.loc[probed == 0, list(probe_columns)] = np.nan
    (found,) = [f for f in diagnose(lagging.to_dict("records"), num_classes=10) if "inference mode" in f]
    assert "score only 0.30 in inference mode" in found and "nan" not in found


def test_probe_every_config_key():
    from comp.config import load_config
    from comp.errors import ConfigError

    assert load_config([]).train.probe_every == "auto" and load_config(["train.probe_every=3"]).train.probe_every == 3
    with pytest.raises(ConfigError, match="train.probe_every.*expected auto or a whole number of at least 1"):
        load_config(["train.probe_every=0"])


def test_val_at_chance_while_train_is_good_without_batchnorm_names_preprocessing():
    found = diagnose(_records(val_accuracy=np.full(8, 0.11), accuracy=np.linspace(0.6, 0.95, 8),
                              probe_accuracy=np.linspace(0.6, 0.97, 8)), num_classes=10)
    assert len(found) == 1 and "at chance" in found[0]
    assert "BatchNorm statistics or preprocessing mismatch" in found[0] and "no BatchNorm" in found[0]


def test_auto_momentum_and_setting_it_on_nested_models():
    assert auto_momentum(12) == pytest.approx(2 / 3)
    assert auto_momentum(1000) == 0.99 and auto_momentum(3) == 0.5
    assert resolve_momentum("auto", 400) == 0.99 and resolve_momentum(0.9, 12) == 0.9
    inner_in = keras.Input((8, 8, 1))
    h = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inner_in))
    body = keras.Model(inner_in, keras.layers.Dense(2)(keras.layers.Flatten()(h)))
    outer_in = keras.Input((8, 8, 1))
    model = keras.Model(outer_in, body(keras.layers.BatchNormalization()(outer_in)))
    assert set_momentum(model, 0.7) == 2
    assert all(layer.momentum == 0.7 for layer in (model.layers[1], body.layers[2]))


def test_bn_momentum_config_key():
    from comp.config import load_config
    from comp.errors import ConfigError

    assert load_config([]).train.bn_momentum == "auto" and load_config([]).train.diagnostics is True
    assert load_config(["train.bn_momentum=0.9"]).train.bn_momentum == 0.9
    with pytest.raises(ConfigError, match="train.bn_momentum.*expected a number.*auto"):
        load_config(["train.bn_momentum=1.5"])
