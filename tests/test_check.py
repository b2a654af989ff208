"""Stage `check` (docs/recipe.md 3), train.lr=auto, and `comp check-plugin` (docs/recipe.md 4)."""
import json
import re

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from comp.api import InputSpec
from comp.config import load_config
from comp.errors import ConfigError
from comp.tasks import make_task
from comp.tasks.base import TaskSource
from comp.training import gradcheck, sanity
from comp.training.model import build_model
from tests.conftest import SMOKE

LINE = re.compile(r"^(PASS|WARN|FAIL) (initial loss|zero-input baseline|overfit one batch|LR range test): ",
                  re.MULTILINE)


def _record(workdir, stage):
    return json.loads((workdir / "runs/digits" / stage / "stage.json").read_text())


def test_check_stage_then_baseline_with_auto_lr(comp, workdir):
    code, out, err = comp("run", "stage=check", *SMOKE)
    assert code == 0, err
    lines = {m.group(2): m.group(1) for m in LINE.finditer(out)}
    assert sorted(lines) == ["LR range test", "initial loss", "overfit one batch", "zero-input baseline"]
    assert lines["initial loss"] == lines["zero-input baseline"] == lines["overfit one batch"] == "PASS"
    initial = re.search(r"^PASS initial loss: ([\d.]+) vs expected ([\d.]+)", out, re.MULTILINE)
    assert abs(float(initial.group(2)) - np.log(10)) < 0.01  # balanced digits: prior entropy ~ ln 10
    assert abs(float(initial.group(1)) - float(initial.group(2))) < 0.25

    folder = workdir / "runs/digits/check"
    assert (folder / "lr_range.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sweep = pd.read_csv(folder / "lr_range.csv")
    assert sweep["lr"].iloc[0] == pytest.approx(1e-5) and sweep["lr"].is_monotonic_increasing
    assert sweep["loss"].min() < 0.5 * sweep["loss"].iloc[0]  # real data: the loss does fall
    record = _record(workdir, "check")
    suggested = record["suggested_lr"]
    assert 1e-4 <= suggested <= 3e-2 and record["checks"][2]["numbers"]["steepest_lr"] > 0
    assert [c["status"] for c in record["checks"]][:3] == ["PASS"] * 3 and record["failed"] == []

    # train.lr=auto: baseline reads the check stage (unchanged, so skipped) and trains with its LR.
    code, out, err = comp("run", "stage=baseline", *SMOKE, "train.lr=auto")
    assert code == 0, err
    assert "[check] unchanged" in out
    baseline = _record(workdir, "baseline")
    assert baseline["lr"] == suggested and baseline["lr_source"] == "check"
    assert baseline["inputs"] == {"split": "split", "check": "check"}


def test_a_tight_budget_skips_checks_but_still_reports_them(comp, workdir, monkeypatch):
    from comp import clock

    ticks = iter(range(0, 10**6, 1))  # a clock that advances 1 s per reading, whatever the machine's speed
    monkeypatch.setattr(clock, "now", lambda: float(next(ticks)))
    # check.max_rows: on a large set the checks sample their rows (here 300 of fold 0's ~720)
    code, out, err = comp("run", "stage=check", "budget=5s", *SMOKE, "check.max_rows=300")
    assert code == 0, err
    assert "model small_cnn on 300 training rows of fold 0" in out
    lines = {m.group(2): m.group(1) for m in LINE.finditer(out)}
    assert lines == {"initial loss": "PASS", "overfit one batch": "PASS", "LR range test": "WARN",
                     "zero-input baseline": "WARN"}
    # the overfit check runs all the same: it times the model for the run plan
    assert out.count("skipped: the checks' share of budget=5s") == 2
    record = _record(workdir, "check")
    assert record["suggested_lr"] is None and len(record["skipped"]) == 2 and record["speed"]["row_seconds"] > 0


def test_numeric_lr_does_not_need_the_check_stage():
    from comp.stages import STAGES, baseline

    assert baseline.inputs(load_config(["train.lr=3e-4"]), set()) == {"split": "split"}
    assert baseline.inputs(load_config(["train.lr=auto"]), set()) == {"split": "split", "check": "check"}
    order = list(STAGES)
    assert order.index("split") < order.index("check") < order.index("baseline")


@pytest.mark.parametrize("value", ["fast", "0", "-1e-3", "true"])
def test_lr_must_be_a_positive_number_or_auto(comp, workdir, value):
    code, out, err = comp("run", "stage=baseline", f"train.lr={value}")
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: train.lr in override 'train.lr={value}': expected a number, got {value!r}; "
        "use a positive number such as 3e-4, or auto (the LR suggested by stage check)"
    ]
    assert not (workdir / "runs").exists()
    assert load_config(["train.lr=AUTO"]).train.lr == "auto"
    assert load_config(["train.lr=1e-3"]).train.lr == 1e-3


# --- broken setups, through the check functions on the real digits ------------------------

@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = np.round(data.images * (255 / 16)).astype(np.uint8)[..., None]
    labels = pd.DataFrame({"label": data.target.astype(str)})
    task = make_task("classification", TaskSource(labels, labels.assign(id="x")[["id", "label"]], "id", ("label",)))
    return x, task.encode(labels), task


def _builder(task):
    return lambda: build_model(InputSpec((8, 8, 1)), task, "small_cnn", {}, [])[0]


def test_badly_initialised_head_bias_fails_initial_loss(digits):
    x, y, task = digits
    keras.utils.set_random_seed(0)
    model = _builder(task)()
    head = model.layers[-1].layers[-1]
    assert head.name.startswith("head")
    (good,) = sanity.check_initial_loss(model, x[:500], y[:500], task)
    bias = np.zeros(10, dtype="float32")
    bias[3] = 8.0  # as if the bias came from a one-class prior: every image confidently "3"
    head.bias.assign(bias)
    (bad,) = sanity.check_initial_loss(model, x[:500], y[:500], task)
    keras.backend.clear_session()
    assert good.status == "PASS"
    assert bad.status == "FAIL" and bad.numbers["loss"] > 5 and "bias" in bad.message
    assert bad.line().startswith("FAIL initial loss: ")


def test_shuffled_labels_fail_the_zero_input_baseline(digits):
    x, y, task = digits
    shuffled = np.random.default_rng(0).permutation(y)  # labels no longer match the images
    result = sanity.check_input_independent(
        _builder(task), (x[:600], shuffled[:600]), (x[600:900], shuffled[600:900]), np.zeros_like, task=task,
        epochs=2, lr=1e-3, batch_size=64, seed=0)
    assert result.status in ("WARN", "FAIL"), result.line()
    assert result.numbers["real"] > 0.8 * result.numbers["zero"]


def test_inputs_that_never_reach_the_model_fail_overfit(digits):
    x, y, task = digits
    blank = np.zeros_like(x[:20])  # e.g. a loader that returns empty images
    bad = sanity.check_overfit_batch(_builder(task), blank, y[:20], task=task, steps=100, lr=1e-3, seed=0)
    assert bad.status == "FAIL" and bad.numbers["loss"] > 1.5, bad.line()


def test_lr_range_test_on_blank_inputs_suggests_nothing(digits):
    x, y, task = digits
    result, sweep = sanity.lr_range_test(_builder(task), np.zeros_like(x[:600]), y[:600], task=task, lr_min=1e-5,
                                         lr_max=1.0, steps=100, batch_size=64, seed=0)
    assert result.status == "FAIL" and result.numbers["suggested_lr"] is None, result.line()
    assert len(sweep) > 10


def test_a_typical_step_leaves_out_the_traced_first_and_a_stall():
    # steps end at 3.0 s (traced), then every 0.1 s, with one 2-s stall
    ended = [3.0, 3.1, 3.2, 3.3, 5.3, 5.4, 5.5, 5.6]
    assert sanity.step_seconds([0.0, *ended]) == pytest.approx(0.1)
    assert sanity.step_seconds(ended[:4]) is None  # too few steps to tell


def test_auto_lr_falls_back_when_check_suggested_nothing(tmp_path):
    from types import SimpleNamespace

    from comp.files import write_json
    from comp.rundir import RunDir
    from comp.stages.training import resolve_lr

    rundir = RunDir(tmp_path)
    write_json(tmp_path / "check/stage.json", {"suggested_lr": None})
    logged = []
    ctx = SimpleNamespace(cfg=load_config(["train.lr=auto"]), upstream={"check": "check"}, rundir=rundir,
                          name="baseline", log=logged.append)
    assert resolve_lr(ctx) == (1e-3, "fallback")
    assert "stage check suggested no LR" in logged[0] and "training with 0.001" in logged[0]
    write_json(tmp_path / "check/stage.json", {"suggested_lr": 0.002})
    assert resolve_lr(ctx) == (0.002, "check")
    assert resolve_lr(SimpleNamespace(cfg=load_config(["train.lr=3e-4"]), upstream={})) == (3e-4, "train.lr")


def test_suggest_lr_picks_a_third_of_the_minimum():
    lrs = np.logspace(-5, 0, 200)
    falling = 2.3 - 2.0 / (1 + np.exp(-(np.log10(lrs) + 3) * 3))  # steepest at 1e-3
    curve = np.where(lrs < 1e-1, falling, falling + (np.log10(lrs) + 1) * 20)  # diverges above 0.1
    assert sanity.suggest_lr(lrs, curve) == pytest.approx(1e-1 / 3, rel=0.1)  # the minimum is at 0.1
    assert sanity.steepest_lr(lrs, curve) == pytest.approx(1e-3, rel=0.1)
    assert sanity.suggest_lr(lrs, np.linspace(2.3, 3.0, 200)) is None  # never falls: nothing to suggest


# --- gradient check -------------------------------------------------------------------------

def test_check_plugin_small_cnn_passes(comp):
    code, out, err = comp("check-plugin", "model=small_cnn")
    assert code == 0, err
    match = re.search(r"^(PASS|WARN) gradient check: max relative error ([0-9.e+-]+)", out, re.MULTILINE)
    assert match, out
    assert float(match.group(2)) < 1e-4
    if match.group(1) == "WARN":
        assert "between safe" in out
    assert keras.config.floatx() == "float32" and keras.config.dtype_policy().name == "float32"


class Square(keras.layers.Layer):
    """x**2 with a hand-written gradient; ``factor=1`` is the classic bug (should be 2)."""

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        @tf.custom_gradient
        def square(v):
            return v * v, lambda dy: dy * self.factor * v

        return square(x)


def _square_plugin(factor):
    def plugin(input_spec, task, hp):
        inputs = keras.Input(shape=input_spec.shape)
        x = keras.layers.Dense(6)(keras.layers.Flatten()(inputs))
        return keras.Model(inputs, task.head(Square(factor)(x)))

    return plugin


@pytest.mark.parametrize("factor, status", [(2.0, "PASS"), (1.0, "FAIL")])
def test_wrong_custom_gradient_is_caught(factor, status):
    task = gradcheck.Float64Task()
    with gradcheck.float64():
        model = _square_plugin(factor)(InputSpec((8, 8, 1)), task, None)
        x = np.random.default_rng(0).random((4, 8, 8, 1))
        result = gradcheck.check_gradients(model, x, np.array([0, 1, 2, 0]), task.loss())
    assert result.status == status, result.line()
    if status == "FAIL":
        assert result.numbers["max_rel_error"] > 0.3  # half the true gradient: error 0.5
        assert "dense" in result.numbers["worst_weight"]  # the layer below the wrong gradient
    assert keras.config.floatx() == "float32"


def test_check_plugin_exits_3_on_a_wrong_gradient(comp, monkeypatch):
    from comp.registry import MODELS

    monkeypatch.setattr(MODELS, "load", lambda name: _square_plugin(1.0))
    code, out, err = comp("check-plugin", "model=buggy")
    assert code == 3
    assert re.search(r"^FAIL gradient check: max relative error [0-9.e+-]+ .*wrong gradient", out, re.MULTILINE)


def test_check_plugin_rejects_other_keys(comp):
    code, _, err = comp("check-plugin", "train.epochs=3")
    assert code == 2 and "check-plugin takes model=NAME" in err
    with pytest.raises(ConfigError):
        load_config(["check.lr_steps=many"])


def test_a_budget_sizes_the_training_checks_to_what_is_left_of_the_share(comp, workdir, monkeypatch):
    """The checks took three times their share of a budget at 3,000 64x64 images (the LR range
    test's 200 steps) and twice at 100,000 (also the zero-input baseline's two trainings).
    Under a budget each trains as much as fits what is left, at the speed the check before it
    measured: here the sweep."""
    from comp import clock
    from comp.stages.check import units_that_fit

    assert units_that_fit(10.0, 0.1, 200, 50) == 100  # 100 of 200 steps fit 10 s
    assert units_that_fit(100.0, 0.1, 200, 50) == 200 and units_that_fit(4.0, 0.1, 200, 50) == 0
    assert units_that_fit(-3.0, 0.1, 200, 50) == 0 and units_that_fit(10.0, 0.1, 30, 50) == 30  # few wanted: all

    # 1 s per reading of the one clock (the checks' Trainer reads it too): each check "takes" a few
    # seconds of the checks' 30-s share
    ticks = iter(range(0, 10**6, 1))
    monkeypatch.setattr(clock, "now", lambda: float(next(ticks)))
    code, out, err = comp("run", "stage=check", "budget=300s", *SMOKE, "check.lr_steps=200")
    assert code == 0, err
    found = re.search(r"^(PASS|WARN) LR range test: .* \((\d+) of check.lr_steps=200, the top of the sweep from "
                      r"(\S+): what fits the checks' share of the budget\)$", out, re.MULTILINE)
    assert found and 50 <= int(found.group(2)) < 200, out
    # the cut sweep keeps the full one's steps a decade (40 over 1e-5..1) and starts higher
    steps, start = int(found.group(2)), float(found.group(3))
    assert start == pytest.approx(10 ** (-5 * (steps - 1) / 199), rel=0.06)
    sweep = pd.read_csv(workdir / "runs/digits/check/lr_range.csv")
    assert len(sweep) <= steps and sweep["lr"].iloc[0] == pytest.approx(start, rel=0.06)
    assert np.log10(sweep["lr"].iloc[1] / sweep["lr"].iloc[0]) == pytest.approx(5 / 199, rel=0.01)
