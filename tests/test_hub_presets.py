"""Pretrained backbones from KerasHub preset folders (``model=hub_preset``): read from disk
only, checked before any work, fine-tuned like the ``keras.applications`` backbones.

The presets are made here, with KerasHub's own ``save_to_preset`` (the files a downloaded
preset has): a small ResNet with random weights. What fine-tuning does with loaded weights
(the head first, then the backbone at a share of the LR) is the same code as for the
``keras.applications`` backbones, tested for transfer in tests/test_backbones.py; here, that
the model starts from the preset's own weights and input range.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SMOKE
from tests.test_backbones import _one_line, small_digits

MODEL = "model=hub_preset"


def _resnet():
    import keras_hub

    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[16], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="bottleneck_block",
        image_shape=(None, None, 3))


def save_preset(folder: Path, backbone, classes: int = 10) -> Path:
    """``backbone`` saved as a KerasHub image classifier preset whose converter scales [0, 255]
    images to [0, 1] at 32x32."""
    import keras_hub

    converter = keras_hub.layers.ResNetImageConverter(image_size=(32, 32), scale=1 / 255.0)
    preprocessor = keras_hub.models.ResNetImageClassifierPreprocessor(image_converter=converter)
    keras_hub.models.ResNetImageClassifier(backbone=backbone, num_classes=classes,
                                           preprocessor=preprocessor).save_to_preset(str(folder))
    return folder


@pytest.fixture(scope="module")
def saved_preset(tmp_path_factory) -> Path:
    """Made once for the module (building and saving it takes seconds)."""
    import keras

    keras.utils.set_random_seed(0)
    preset = save_preset(tmp_path_factory.mktemp("hub") / "resnet-preset", _resnet())
    keras.backend.clear_session()
    return preset


@pytest.fixture
def random_preset(saved_preset, tmp_path) -> Path:
    """A copy of the preset of this test's own (a test may damage it)."""
    import shutil

    return Path(shutil.copytree(saved_preset, tmp_path / "resnet-preset"))


def _digits_task():
    from comp.tasks import make_task
    from comp.tasks.base import TaskSource

    labels = pd.DataFrame({"label": list(range(10)) * 2})
    return make_task("classification", TaskSource(labels, labels.assign(id="x")[["id", "label"]], "id", ("label",)))


def test_a_preset_starts_the_model_from_its_weights_at_its_own_input_size(random_preset):
    """The backbone inside the model holds the preset's weights (``weights=none``: the same
    architecture, other weights); images are scaled to the preset's 32 pixels."""
    import keras
    import keras_hub

    from comp.api import InputSpec
    from comp.training.batchnorm import nested_layers
    from comp.training.model import build_model

    saved = keras_hub.models.Backbone.from_preset(str(random_preset)).get_weights()
    for weights, same in (("preset", True), ("none", False)):
        model, hp = build_model(InputSpec((8, 8, 1)), _digits_task(), "hub_preset",
                                {"preset": str(random_preset), "weights": weights})
        inner = next(layer for layer in nested_layers(model) if isinstance(layer, keras_hub.models.Backbone))
        assert all(np.array_equal(a, b) for a, b in zip(inner.get_weights(), saved)) is same
        assert hp["resolution"] == 32
        out = model.predict(np.random.default_rng(0).random((2, 8, 8, 1)).astype("float32"), verbose=0)
        assert out.shape == (2, 10) and np.allclose(out.sum(axis=1), 1.0, atol=1e-4)
        keras.backend.clear_session()


def test_a_preset_trains_on_every_fold_and_its_fold_models_load_in_a_new_process(comp, workdir, random_preset):
    """Trained by the baseline like any Keras model; a fold model is read back where nothing
    imported KerasHub first (predict, a search's trial and a later run read them so)."""
    competition = small_digits(workdir / "digits120", rows=120)
    code, out, err = comp("run", "stage=baseline", f"competition={competition}", "run=digits", *SMOKE, MODEL,
                          f"model.hp.preset={random_preset}", "split.folds=2")
    assert code == 0, err
    record = json.loads((workdir / "runs/digits/baseline/stage.json").read_text())
    assert record["model"]["name"] == "hub_preset" and record["model"]["hp"]["preset"] == str(random_preset)
    script = ("import sys; from pathlib import Path; import numpy as np; "
              "from comp.training.fold_model import load_fold_model; "
              "m = load_fold_model(Path(sys.argv[1])).model; "
              "print(m.predict(np.zeros((3, 8, 8, 1), 'float32'), verbose=0).shape)")
    done = subprocess.run([sys.executable, "-c", script, str(workdir / "runs/digits/baseline/fold_0")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "(3, 10)"


def test_a_missing_or_incomplete_preset_stops_the_run_before_any_work(comp, workdir, tmp_path, random_preset):
    """One line naming the knob, the folder and what is missing; exit 2; no run folder."""
    code, _, err = comp("run", "stage=all", *SMOKE, MODEL)
    assert code == 2 and _one_line(err).startswith(
        "error: model=hub_preset: name the preset with model.hp.preset=DIR, a KerasHub preset folder on this machine")
    missing = tmp_path / "nowhere"
    code, _, err = comp("run", "stage=all", *SMOKE, MODEL, f"model.hp.preset={missing}")
    assert code == 2 and _one_line(err) == (
        f"error: model.hp.preset={missing}: no such folder; give a KerasHub preset folder (config.json, "
        "model.weights.h5); comp reads presets from disk and does not download them")
    (random_preset / "model.weights.h5").unlink()
    code, _, err = comp("run", "stage=all", *SMOKE, MODEL, f"model.hp.preset={random_preset}")
    assert code == 2 and _one_line(err).startswith(
        f"error: model.hp.preset={random_preset}: model.weights.h5 is not in it;")
    code, _, err = comp("run", "stage=all", *SMOKE, MODEL, f"model.hp.preset={random_preset}",
                        "model.hp.weights=imagenet")
    assert code == 2 and _one_line(err).startswith("error: model.hp.weights=imagenet: model=hub_preset takes preset")
    assert not (workdir / "runs").exists()


def test_a_damaged_preset_is_refused_and_the_file_left_as_it_was(comp, workdir, random_preset):
    weights = random_preset / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    code, _, err = comp("run", "stage=all", *SMOKE, MODEL, f"model.hp.preset={random_preset}")
    line = _one_line(err)
    assert code == 2 and line.startswith(f"error: model.hp.preset={random_preset}: KerasHub cannot load it ("), line
    assert line.endswith("is the folder a complete image backbone preset?")
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == digest
    assert not (workdir / "runs").exists()


def test_without_keras_hub_the_plugin_says_how_to_install_it(comp, workdir, random_preset, monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # import keras_hub raises ImportError
    code, _, err = comp("run", "stage=all", *SMOKE, MODEL, f"model.hp.preset={random_preset}")
    assert code == 2 and _one_line(err) == (
        "error: model=hub_preset needs KerasHub, which is not installed: pip install 'comp[hub]'")


def test_a_preset_brings_its_frozen_features_which_embed_with_its_weights(random_preset, tmp_path, monkeypatch):
    """With its weights a preset declares its frozen features for baseline.variants=auto (from
    scratch, nothing); they are the preset's backbone on its own input range and size,
    average pooled."""
    import keras
    import keras_hub

    from comp.config import load_config
    from comp.competition import open_competition
    from comp.stages.training import variant_models
    from comp_plugins.backbones import Embedder

    competition = small_digits(tmp_path / "digits60", rows=60)
    frozen = {"backbone": "hub_preset", "preset": str(random_preset), "weights": "preset"}
    for extra, expected in (([], [("frozen_features", frozen)]),
                            (["model.hp.resolution=40"], [("frozen_features", {**frozen, "resolution": 40})]),
                            (["model.hp.weights=none"], [])):
        cfg = load_config([f"competition={competition}", MODEL, f"model.hp.preset={random_preset}", *extra])
        found, task, _ = open_competition(cfg)
        assert variant_models(cfg, found, task) == expected, extra

    monkeypatch.setattr(Embedder, "_cache", {})
    monkeypatch.setattr(Embedder, "_folder", lambda self, key: tmp_path / "embeddings")
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 1), dtype=np.uint8)
    got = Embedder("hub_preset", "preset", 32, str(random_preset)).transform(images)
    net = keras_hub.models.Backbone.from_preset(str(random_preset))
    # what the preset's converter does (scale 1/255 at 32x32) to the grey image made three channels
    resized = keras.ops.image.resize(np.repeat(images, 3, axis=-1).astype("float32"), (32, 32))
    expected = keras.ops.mean(net(resized / 255.0), axis=(1, 2))
    assert got.shape == (3, expected.shape[-1]) and np.allclose(got, keras.ops.convert_to_numpy(expected), atol=1e-4)
    keras.backend.clear_session()


def test_frozen_features_of_a_preset_train_on_every_fold(comp, workdir, random_preset, monkeypatch):
    """model=frozen_features model.hp.backbone=hub_preset: the preset's features and a linear
    head, scored on every fold (random convolutions' features still separate digits); a
    preset's frozen features with other weights are refused before any work."""
    from comp_plugins.backbones import Embedder

    monkeypatch.setattr(Embedder, "_cache", {})
    monkeypatch.setattr(Embedder, "_folder", lambda self, key: workdir / "embeddings")
    competition = small_digits(workdir / "digits120", rows=120)
    features = ("model=frozen_features", "model.hp.backbone=hub_preset", f"model.hp.preset={random_preset}")
    code, _, err = comp("run", "stage=baseline", f"competition={competition}", "run=digits", *SMOKE, *features,
                        "model.hp.weights=none")
    assert code == 2 and _one_line(err) == (
        "error: model.hp.weights=none: frozen_features on a KerasHub preset embeds with the preset's own weights; "
        "leave model.hp.weights at preset")
    code, _, err = comp("run", "stage=baseline", f"competition={competition}", "run=digits", *SMOKE,
                        "model=frozen_features", f"model.hp.preset={random_preset}")
    assert code == 2 and _one_line(err) == (
        f"error: model.hp.preset={random_preset}: frozen_features embeds with a KerasHub preset only with "
        "model.hp.backbone=hub_preset; add it, or leave out model.hp.preset")
    assert not (workdir / "runs").exists()
    code, out, err = comp("run", "stage=baseline", f"competition={competition}", "run=digits", *SMOKE, *features,
                          "split.folds=2")
    assert code == 0, err
    record = json.loads((workdir / "runs/digits/baseline/stage.json").read_text())
    assert record["model"]["hp"] == {"backbone": "hub_preset", "preset": str(random_preset), "weights": "preset",
                                     "resolution": 32, "regularization": 1.0}
    assert record["score"] > 0.5, out
