"""Plugins come from entry points; built-ins are registered exactly like a third party's."""
import subprocess
import sys
from pathlib import Path

import pytest

from comp.errors import PluginError
from comp.registry import AUGMENTATIONS, MODELS
from tests.conftest import SMOKE, comp_subprocess

PACKAGES = Path(__file__).parent / "plugin_packages"


def _pip(*args):
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True)


def test_builtins_are_discoverable_entry_points():
    models = {p.name: p for p in MODELS.list()}
    assert models["small_cnn"].distribution.startswith("comp ")
    assert models["small_cnn"].value == "comp_plugins.models:small_cnn"
    augs = {p.name: p for p in AUGMENTATIONS.list()}
    assert {"shift", "rotate", "zoom", "flip"} <= set(augs)
    assert augs["flip"].value == "comp_plugins.augmentations:flip"


def test_unknown_model_names_closest():
    with pytest.raises(PluginError, match=r"no model plugin named 'small_cn' \(closest: small_cnn"):
        MODELS.load("small_cn")


def test_unknown_hyperparameter(comp, workdir):
    code, _, err = comp("run", "stage=baseline", *SMOKE, "model.hp.filterz=8")
    assert code == 2
    assert "model.hp.filterz: model plugin 'small_cnn' has no such hyperparameter; did you mean 'filters'?" in err


def _installed_apart(package: str, tmp_path_factory) -> dict:
    """Install a plugin package into its own site directory; the env that puts it on the path.

    Not into the shared virtual environment: tests on other xdist workers would see its entry
    points come and go mid-run (a search listing `invert`, then failing to load it).
    """
    target = tmp_path_factory.mktemp(package)
    _pip("install", "--no-deps", "--no-build-isolation", "--target", str(target), str(PACKAGES / package))
    return {"PYTHONPATH": str(target)}


@pytest.fixture(scope="module")
def tiny_plugin_installed(tmp_path_factory):
    return _installed_apart("comp_tiny_plugin", tmp_path_factory)


def test_third_party_plugin_is_listed_and_used(tiny_plugin_installed, workdir):
    listed = comp_subprocess("plugins", cwd=workdir, env=tiny_plugin_installed)
    assert listed.returncode == 0
    line = next(l for l in listed.stdout.splitlines() if "tiny_mlp" in l)
    assert "comp-tiny-plugin 0.1.0" in line and "comp_tiny_plugin:tiny_mlp" in line

    result = comp_subprocess("run", "stage=all", *SMOKE, "model=tiny_mlp", "model.hp.units=16",
                             "train.lr=0.003", "train.epochs=10", cwd=workdir, env=tiny_plugin_installed)
    assert result.returncode == 0, result.stderr
    import json
    record = json.loads((workdir / "runs/digits/baseline/stage.json").read_text())
    # train.augmentations=auto: the default light augmentations, in front of any image model.
    assert record["model"] == {"name": "tiny_mlp", "hp": {"units": 16}, "augmentations": ["rotate", "shift", "zoom"]}
    assert record["score"] > 0.5  # a real model, trained: chance is 0.1
    assert list((workdir / "submissions").glob("digits-baseline-accuracy=*.csv"))


def test_third_party_augmentation_is_used_by_name(tiny_plugin_installed, workdir):
    result = comp_subprocess("run", "stage=baseline", *SMOKE, "train.augmentations=[shift,invert:0.3]", cwd=workdir,
                             env=tiny_plugin_installed)
    assert result.returncode == 0, result.stderr
    import json

    import keras

    record = json.loads((workdir / "runs/digits/baseline/stage.json").read_text())
    assert record["model"]["augmentations"] == ["shift", "invert:0.3"]
    model = keras.saving.load_model(workdir / "runs/digits/baseline/fold_0/model.keras")
    invert = next(layer for layer in model.layers if layer.name == "aug_invert")
    assert tuple(invert.factor) == pytest.approx((0, 0.3))  # the policy's strength, not the default 0.5


def test_broken_plugin_names_distribution_and_entry_point(tmp_path, workdir):
    target = tmp_path / "site"
    _pip("install", "--no-deps", "--no-build-isolation", "--target", str(target),
         str(PACKAGES / "comp_broken_plugin"))
    result = comp_subprocess("run", "stage=baseline", *SMOKE, "model=broken", cwd=workdir,
                             env={"PYTHONPATH": str(target)})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "model plugin 'broken' failed to import (ModuleNotFoundError" in line
    assert "entry point 'broken = comp_broken_plugin:model'" in line
    assert "distribution comp-broken-plugin 0.2.0" in line

    check = comp_subprocess("plugins", "--check", cwd=workdir, env={"PYTHONPATH": str(target)})
    assert check.returncode == 2 and "broken" in check.stdout and "FAILED" in check.stdout
    # The working plugins are described, an augmentation with its strength knob.
    assert "rotate by up to strength degrees either way (strength 10 degrees, 0-180)" in check.stdout


@pytest.fixture(scope="module")
def metric_plugin_installed(tmp_path_factory):
    return _installed_apart("comp_metric_plugin", tmp_path_factory)


@pytest.mark.slow  # ~37 s; a third party's plugins are also test_third_party_plugin_is_listed_and_used: `pytest -m slow` (CI's 20 minutes)
def test_a_competition_plugs_in_its_own_metric(metric_plugin_installed, workdir):
    listed = comp_subprocess("plugins", "m*", cwd=workdir, env=metric_plugin_installed)
    assert "mcc" in listed.stdout and "comp-metric-plugin 0.1.0" in listed.stdout

    result = comp_subprocess("run", "stage=all", *SMOKE, "metric=mcc", cwd=workdir, env=metric_plugin_installed)
    assert result.returncode == 0, result.stderr
    import json

    import numpy as np
    import pandas as pd
    from sklearn.metrics import matthews_corrcoef

    record = json.loads((workdir / "runs/digits/baseline/stage.json").read_text())
    assert record["metric"] == "mcc" and record["higher_is_better"] is True
    oof = pd.read_csv(workdir / "runs/digits/baseline/oof.csv", dtype=str)
    expected = matthews_corrcoef(oof["label"].astype(int), oof["prediction"].astype(int))
    assert np.isclose(record["score"], expected)
    history = pd.read_csv(workdir / "runs/digits/baseline/fold_0/history.csv")
    assert history["val_score"].between(-1, 1).all()  # early stopping watched the coefficient
    assert list((workdir / "submissions").glob("digits-baseline-mcc=*.csv"))
    wrong = comp_subprocess("run", "stage=all", *SMOKE, "metric=mcc", "competition=demo:diabetes", cwd=workdir,
                            env=metric_plugin_installed)
    assert wrong.returncode == 2 and "metric=mcc does not fit task regression" in wrong.stderr


@pytest.mark.slow  # ~27 s; a search stage that raises is also tests/test_hostile.py's: `pytest -m slow` (CI's 20 minutes)
def test_trials_that_raise_fail_alone_and_the_run_still_submits(tiny_plugin_installed, workdir):
    """A model that cannot be built at some of its searched values: those trials are recorded
    as failed with their reason, the search goes on, and the run ends with a submission."""
    result = comp_subprocess("run", "stage=all", *SMOKE, "model=wide_fails", "tune.coarse_trials=4",
                             "tune.coarse_epochs=0.34", "tune.fine_trials=1", "tune.oracle=random",
                             cwd=workdir, env=tiny_plugin_installed)
    assert result.returncode == 0, result.stderr[-3000:]
    import pandas as pd

    trials = pd.read_csv(workdir / "runs/digits/tune/trials.csv").iloc[1:]
    wide = trials["model.hp.units"] > 24
    assert wide.any() and (trials.loc[wide, "status"] == "FAILED").all()
    assert (trials.loc[~wide, "status"] == "COMPLETED").all()
    assert "more than this model can build (left out; traceback in tune/failures.log)" in result.stdout
    assert "RuntimeError: wide_fails" in (workdir / "runs/digits/tune/failures.log").read_text()
    assert result.stdout.strip().splitlines()[-1].startswith("warning: ")
    assert list((workdir / "submissions").glob("digits-*-accuracy=*.csv"))


@pytest.mark.slow  # ~40 s; strict=true's exit 4 is tested in the default suite by test_hostile's search stage
def test_a_search_whose_every_trial_raises_ends_and_the_run_still_submits(tiny_plugin_installed, workdir):
    """Every trial raising ends the search (keras-tuner's consecutive-failure limit), not the run:
    the starting configuration stands and the run still submits; strict=true then exits 4."""
    import pandas as pd

    result = comp_subprocess("run", "stage=all", *SMOKE, "model=wide_fails", "tune.coarse_trials=4",
                             "tune.coarse_epochs=0.34", "tune.fine_trials=1", "tune.oracle=random",
                             "tune.space={model.hp.units: [32, 128]}", "run=all_fail", "strict=true", cwd=workdir,
                             env=tiny_plugin_installed)
    assert result.returncode == 4, result.stderr[-3000:]
    assert "part(s) of the run failed and were left out" in result.stderr and "(strict=true)" in result.stderr
    trials = pd.read_csv(workdir / "runs/all_fail/tune/trials.csv").iloc[1:]
    assert len(trials) >= 4 and (trials["status"] == "FAILED").all()
    assert "the starting configuration stands" in result.stdout
    assert list((workdir / "submissions").glob("all_fail-*-accuracy=*.csv"))


def test_small_cnn_stacks_as_many_blocks_as_the_input_size_supports():
    """8x8 digits and 8x32 street numbers keep 2 blocks; 28x28 and larger get 3 (the last
    block on a 7x7 map), unless model.hp.blocks says otherwise."""
    import keras_tuner as kt

    import pandas as pd

    from comp.api import InputSpec
    from comp.tasks import TaskSource, make_task
    from comp_plugins.models import small_cnn

    labels = pd.DataFrame({"label": [str(c) for c in range(10)]})
    task = make_task("classification", TaskSource(labels, labels.assign(id="x")[["id", "label"]], "id", ("label",)))

    def pools(shape, **fixed):
        hp = kt.HyperParameters()
        for name, value in fixed.items():
            hp.Fixed(name, value)
        model = small_cnn(InputSpec(shape), task, hp)
        return hp.values["blocks"], sum(type(layer).__name__ == "MaxPooling2D" for layer in model.layers)

    assert pools((8, 8, 1)) == (2, 2)
    assert pools((28, 28, 1)) == (3, 3)  # 28 -> 14 -> 7 -> 3: the third block works on 7x7
    assert pools((28, 28, 1), blocks=2) == (2, 2)


@pytest.mark.parametrize("name,average", [("f1_micro", "micro"), ("f1_macro", "macro"), ("f1_samples", "samples"),
                                          ("f1", "micro")])
def test_multilabel_f1_is_scikit_learns_to_the_last_digit(name, average):
    """The multilabel F1s are counted by hand for speed; they must be scikit-learn's, empty
    rows, labels never predicted and labels never true included."""
    import numpy as np
    from sklearn.metrics import f1_score

    from comp.registry import METRICS

    rng = np.random.default_rng(0)
    for rows, labels, density in [(50, 4, 0.3), (200, 7, 0.05), (9, 3, 0.0), (30, 5, 0.9)]:
        truth = (rng.random((rows, labels)) < density).astype(int)
        pred = (rng.random((rows, labels)) < density).astype(int)
        truth[:, 0], pred[:, -1] = 0, 0
        got = METRICS.load(name).fn(truth, pred)
        assert got == pytest.approx(f1_score(truth, pred, average=average, zero_division=0), abs=1e-12)
    one = (rng.random((40, 1)) < 0.4).astype(int), (rng.random((40, 1)) < 0.4).astype(int)
    assert METRICS.load(name).fn(*one) == pytest.approx(f1_score(one[0].ravel(), one[1].ravel(), zero_division=0))
