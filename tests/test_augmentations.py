"""Augmentation plugins and policies: every built-in keeps shapes, dtypes and value ranges,
acts only in training, follows its strength and repeats under a seed; bad policies are one line."""
import json

import numpy as np
import pytest

from comp.api import InputSpec
from comp.augmentation import resolve
from comp.registry import AUGMENTATIONS
from tests.conftest import SMOKE

BUILT_IN = sorted(p.name for p in AUGMENTATIONS.list() if p.value.startswith("comp_plugins."))
LAYERS = [name for name in BUILT_IN if not AUGMENTATIONS.load(name).batch]
MIXERS = [name for name in BUILT_IN if AUGMENTATIONS.load(name).batch]


def _images(channels: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    digits = load_digits().images[:16, :, :, None] / 16.0  # real images in [0, 1]
    return np.repeat(digits, channels, axis=-1).astype("float32")


def _apply(name: str, images: np.ndarray, strength=None, seed: int = 7, training: bool = True) -> np.ndarray:
    import keras

    keras.utils.set_random_seed(seed)
    aug, _ = resolve(name if strength is None else f"{name}:{strength}", "image", "classification")
    layer = aug.layer(InputSpec(images.shape[1:], "image"), strength)
    return keras.ops.convert_to_numpy(layer(images, training=training))


def test_the_built_ins_are_the_documented_set():
    assert BUILT_IN == ["brightness", "contrast", "cutmix", "erase", "flip", "mixup", "rotate", "shift", "vflip", "zoom"]
    assert MIXERS == ["cutmix", "mixup"]
    defaults = {name for name in BUILT_IN if AUGMENTATIONS.load(name).default}
    assert defaults == {"shift", "rotate", "zoom"}  # no flip: a mirrored digit is another label


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", LAYERS)
def test_a_built_in_keeps_shape_dtype_and_range_and_repeats_under_a_seed(name, channels):
    images = _images(channels)
    out = _apply(name, images)
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6, (out.min(), out.max())
    assert not np.allclose(out, images)  # it does something to a batch of 16
    np.testing.assert_array_equal(out, _apply(name, images))  # the same seed, the same batch
    assert not np.array_equal(out, _apply(name, images, seed=8))
    np.testing.assert_array_equal(_apply(name, images, training=False), images)  # inference: untouched


@pytest.mark.parametrize("name", MIXERS)
def test_a_mixer_pairs_rows_and_weighs_their_labels_repeatably(name):
    import tensorflow as tf

    images = (_images(1) * 255).astype("uint8")  # what the loop feeds: the raw uint8 images
    mix = AUGMENTATIONS.load(name).layer(InputSpec(images.shape[1:], "image"))
    mixed, partner, weight = (np.asarray(v) for v in mix(tf.constant(images), tf.constant([1, 2], tf.int64)))
    assert mixed.shape == images.shape and mixed.dtype == np.uint8
    assert sorted(partner) == list(range(len(images))) and 0 <= weight <= 1
    # Every pixel lies between the row's own and its partner's value (a blend or a pasted box).
    low, high = np.minimum(images, images[partner]), np.maximum(images, images[partner])
    assert ((mixed >= low) & (mixed <= high)).all()
    assert not np.array_equal(mixed, images)
    again = [np.asarray(v) for v in mix(tf.constant(images), tf.constant([1, 2], tf.int64))]
    np.testing.assert_array_equal(again[0], mixed)  # the same step seed, the same mix: resumable
    other = [np.asarray(v) for v in mix(tf.constant(images), tf.constant([1, 3], tf.int64))]
    assert not np.array_equal(other[0], mixed)


def test_cutmix_weighs_labels_by_the_area_kept():
    import tensorflow as tf

    images = np.zeros((4, 10, 10, 1), "uint8")
    images[1:] = 255  # row 0 black, the others white: a pasted box shows where it went
    mix = AUGMENTATIONS.load("cutmix").layer(InputSpec(images.shape[1:], "image"))
    for step in range(5):
        mixed, partner, weight = (np.asarray(v) for v in mix(tf.constant(images), tf.constant([0, step], tf.int64)))
        if partner[0] != 0:
            assert (mixed[0] == 0).mean() == pytest.approx(float(weight))


@pytest.mark.parametrize("name, weak, strong", [("shift", 0.05, 0.3), ("rotate", 5, 60), ("erase", 0.05, 0.5),
                                                ("brightness", 0.05, 0.5)])
def test_a_larger_strength_changes_images_more(name, weak, strong):
    images = _images(1)
    change = {s: np.abs(_apply(name, images, s) - images).mean() for s in (weak, strong)}
    assert change[strong] > 1.5 * change[weak], change


@pytest.mark.parametrize("policy, message", [
    ("[shift:0.7]", "train.augmentations: shift:0.7 is out of range; use a strength in [0, 0.5] (fraction of the "
                    "size), default 0.1"),
    ("[flip:0.5]", "train.augmentations: 'flip' has no strength; write flip alone"),
    ("[rotate:ten]", "train.augmentations: 'rotate:ten' is not NAME or NAME:STRENGTH"),
    ("[mixup,cutmix]", "train.augmentations: mixup and cutmix both mix batches; keep one of them"),
])
def test_a_bad_policy_is_one_line_before_any_work(policy, message, comp, workdir):
    code, out, err = comp("run", "stage=all", *SMOKE, f"train.augmentations={policy}")
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (workdir / "runs").exists()


def test_strengths_reach_the_trained_model(comp, workdir):
    import keras

    code, _, err = comp("run", "stage=baseline", *SMOKE, "train.augmentations=[shift:0.2, rotate: 15, erase]")
    assert code == 0, err
    record = json.loads((workdir / "runs/digits/baseline/stage.json").read_text())
    assert record["model"]["augmentations"] == ["shift:0.2", "rotate:15", "erase"]
    model = keras.saving.load_model(workdir / "runs/digits/baseline/fold_0/model.keras")
    layers = {layer.name: layer for layer in model.layers}
    assert layers["aug_shift"].height_factor == pytest.approx(0.2)
    assert layers["aug_rotate"].factor == pytest.approx((-15 / 360, 15 / 360))
    assert "aug_erase" in layers


@pytest.mark.slow  # ~27 s: `pytest -m slow` (CI's 20 minutes)
def test_mixup_trains_through_the_loop_and_repeats(comp, workdir):
    args = ("run", "stage=baseline", *SMOKE, "train.augmentations=[shift,mixup:0.4]", "train.epochs=6")
    code, _, err = comp(*args)
    assert code == 0, err
    record = json.loads((workdir / "runs/digits/baseline/stage.json").read_text())
    assert record["model"]["augmentations"] == ["shift", "mixup:0.4"]
    assert record["score"] > 0.5  # chance is 0.1
    first = np.load(workdir / "runs/digits/baseline/oof.npy")
    assert comp(*args, "overwrite=true")[0] == 0
    np.testing.assert_array_equal(first, np.load(workdir / "runs/digits/baseline/oof.npy"))


def test_cutmix_is_refused_where_labels_do_not_mix_by_area(comp, workdir):
    code, _, err = comp("run", "stage=all", "competition=demo:digit-value", "train.augmentations=[cutmix]")
    assert code == 2 and "augmentation 'cutmix' does not preserve regression labels" in err
