"""The table portfolio (baseline.variants=auto): models that err differently from gradient
boosting, trained beside it on the same folds for the ensemble to blend, on real tables."""
import json

import numpy as np
import pandas as pd
import pytest

from comp.demo import cache_root, holdout_score
from tests.conftest import read_submission

NO_SEARCH = ("regularize.time=0", "tune.time=0")


def test_the_default_portfolio_beats_gradient_boosting_alone_on_breast_cancer(comp, workdir):
    """On 455 training rows of 30 numeric columns gradient boosting scores OOF ROC-AUC 0.9885;
    the linear model of the portfolio 0.9947, extra trees 0.9935: the submission, chosen among
    them on the other folds for each fold, is published above gradient boosting alone."""
    code, out, err = comp("run", "stage=all", "competition=demo:breast-cancer", *NO_SEARCH)
    assert code == 0, err
    baseline = json.loads((workdir / "runs/breast-cancer/baseline/stage.json").read_text())
    assert baseline["model"]["name"] == "hgb" and sorted(baseline["variants"]) == ["extra_trees", "linear"]
    assert baseline["variants"]["linear"]["score"] > baseline["score"] + 0.003
    ensemble = json.loads((workdir / "runs/breast-cancer/ensemble/stage.json").read_text())
    assert ensemble["score"] > baseline["score"]  # honest: each fold's choice made on the other folds
    submission = next((workdir / "submissions").glob("breast-cancer-ensemble-roc_auc=*.csv"))
    assert holdout_score(cache_root(), "breast-cancer", submission)[1] > 0.98
    # The report's candidate table says what each model cost a fold to train.
    candidates = pd.read_csv(workdir / "runs/breast-cancer/ensemble/candidates.csv")
    models = candidates[candidates["kind"] == "fold"].set_index("candidate")
    assert sorted(models.index) == ["baseline", "baseline/extra_trees", "baseline/linear"]
    assert (models["train_s_per_fold"] > 0).all()
    # Every member's fold models are kept for prediction, pickled with their column encoding.
    for name in ("extra_trees", "linear"):
        assert len(list((workdir / f"runs/breast-cancer/baseline/variants/{name}").glob("fold_*/model.pkl"))) == 5


# The plugins outside the default portfolio, and the MLP (~60 s; it trains on tables in
# test_ensemble), run in `pytest -m slow` (CI's 20 minutes).
@pytest.mark.parametrize("model", [pytest.param("random_forest", marks=pytest.mark.slow), "extra_trees", "linear",
                                   pytest.param("knn", marks=pytest.mark.slow), "catboost",
                                   pytest.param("mlp", marks=pytest.mark.slow)])
def test_each_table_model_learns_categories_and_missing_cells(model, comp, workdir):
    """Each plugin as the main model, on the wine table (13 numeric columns and a category,
    its colour) with one cell in ten of a number and of the category left empty and three
    infinite numbers: it trains,
    scores well above chance and submits a known label for every test row."""
    from comp.demo import demo_competition

    source = demo_competition(cache_root(), "wine")
    folder = workdir / "wine"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        frame = pd.read_csv(source / f"{split}.csv")
        for column in ("alcohol", "colour"):
            frame.loc[rng.random(len(frame)) < 0.1, column] = np.nan
        frame.loc[frame.index[:3], "magnesium"] = np.inf  # "inf" in the CSV: read as a number, learnt as missing
        frame.to_csv(folder / f"{split}.csv", index=False)
    (folder / "sample_submission.csv").write_bytes((source / "sample_submission.csv").read_bytes())
    # CatBoost's 1,000 iterations and the MLP's 40 epochs are for real tables
    fewer = {"catboost": ["model.hp.iterations=200"], "mlp": ["train.epochs=12"]}.get(model, [])
    code, out, err = comp("run", "stage=all", f"competition={folder}", f"model={model}", "baseline.variants=[]",
                          *NO_SEARCH, *fewer)
    assert code == 0, err
    record = json.loads((workdir / "runs/wine/baseline/stage.json").read_text())
    assert record["model"]["name"] == model and record["score"] > 0.85  # chance: 0.40
    submission = read_submission(next((workdir / "submissions").glob("wine-*.csv")))
    assert len(submission) == len(pd.read_csv(folder / "test.csv"))
    assert set(submission["cultivar"]) <= {"barolo", "grignolino", "barbera"}


def test_images_get_no_portfolio_and_tables_one_the_ensemble_blends():
    from comp.config import load_config
    from comp.competition import open_competition
    from comp.stages.training import variant_names

    cfg = load_config(["competition=demo:digits"])
    competition, task, _ = open_competition(cfg)
    assert variant_names(cfg, competition, task) == []
    cfg = load_config(["competition=demo:wine", "model=mlp"])
    competition, task, _ = open_competition(cfg)
    assert variant_names(cfg, competition, task) == ["hgb", "extra_trees", "linear"]  # the main model left out
    cfg = load_config(["competition=demo:wine", "ensemble.candidates=[fold]"])
    assert variant_names(cfg, competition, task) == []  # nothing would blend them


def test_a_portfolio_auto_resolves_differently_retrains_the_baseline(comp, workdir):
    """``baseline.variants=auto`` depends on ensemble.candidates: a baseline trained while the
    ensemble left the variants out is not reused once it blends them (it was, without them)."""
    code, out, err = comp("run", "stage=baseline", "competition=demo:wine", "ensemble.candidates=[fold]")
    assert code == 0, err
    assert "variants" not in json.loads((workdir / "runs/wine/baseline/stage.json").read_text())
    code, out, err = comp("run", "stage=baseline", "competition=demo:wine")
    assert code == 0 and "[baseline] unchanged" not in out, out
    record = json.loads((workdir / "runs/wine/baseline/stage.json").read_text())
    assert list(record["variants"]) == ["extra_trees", "linear"]
    code, out, err = comp("run", "stage=baseline", "competition=demo:wine", "ensemble.candidates=[fold,variants]")
    assert code == 0 and "[baseline] unchanged" in out  # the same portfolio: nothing retrains


def _table_of(folder, rows: int):
    """A regression competition of ``rows`` random rows (only its size matters here)."""
    rng = np.random.default_rng(0)
    folder = folder / f"t{rows}"
    folder.mkdir()
    train = pd.DataFrame({"id": np.arange(rows), "a": rng.normal(size=rows), "y": rng.normal(size=rows)})
    train.to_csv(folder / "train.csv", index=False)
    pd.DataFrame({"id": [rows], "a": [0.0]}).to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"id": [rows], "y": [0.0]}).to_csv(folder / "sample_submission.csv", index=False)
    return folder


def test_catboost_is_named_into_the_portfolio_and_without_it_one_line_says_how_to_install_it(monkeypatch, comp,
                                                                                             workdir):
    """Not a default (it moved no held-back score in the pipeline), CatBoost joins the portfolio
    when named; where it is not installed, naming it is one line before any work."""
    import sys

    from comp.config import load_config
    from comp.competition import open_competition
    from comp.stages.training import variant_names

    cfg = load_config(["competition=demo:wine", "baseline.variants=[catboost,linear]"])
    competition, task, _ = open_competition(cfg)
    assert variant_names(cfg, competition, task) == ["catboost", "linear"]
    monkeypatch.setitem(sys.modules, "catboost", None)  # import catboost raises ImportError
    for named in ("model=catboost", "baseline.variants=[catboost]"):
        code, _, err = comp("run", "stage=baseline", "competition=demo:wine", named)
        assert code == 2, err
        assert err.strip().splitlines()[-1].endswith(
            "model=catboost needs CatBoost, which is not installed: pip install 'comp[boost]'"), err
    assert not (workdir / "runs").exists()


def test_catboost_stops_at_its_deadline_and_keeps_the_trees_it_fitted():
    """Under a deadline CatBoost is told its seconds and stops between iterations: on 12,000
    rows of Friedman #1 it fits fewer of its 5,000 trees than asked, says so, keeps what it
    fitted (well above predicting the mean) and carries no deadline once fitted."""
    import math

    import keras_tuner as kt
    from sklearn.datasets import make_friedman1

    from comp import clock
    from comp.registry import MODELS
    from comp.training.bounded_fit import BoundedFit

    class Regression:
        estimator_role = "regressor"

    x, y = make_friedman1(15_000, noise=0.1, random_state=0)
    x = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    hp = kt.HyperParameters()
    hp.Fixed("iterations", 5000)
    model = MODELS.load("catboost").build(None, Regression(), hp)
    bounded = BoundedFit(clock.now() + 1.5)
    bounded(model, x[:12_000], y[:12_000])
    assert 0 < model.n_iter_ < 5000 and bounded.stopped == [(model.n_iter_, 5000, "iterations")]
    assert math.isinf(model.get_params()["time_limit"])
    rmse = float(np.sqrt(np.mean((model.predict(x[12_000:]) - y[12_000:]) ** 2)))
    assert rmse < 0.5 * float(np.std(y[12_000:])), rmse


def test_the_mlp_and_a_second_boosting_configuration_join_from_ten_thousand_rows(tmp_path):
    """The MLP (last: it trains after the estimators) and hgb_long (31 leaves, grown until its
    early stopping) are in the default portfolio of a table of 10,000 rows or more. Named, each
    trains on any table."""
    from comp.config import load_config
    from comp.competition import open_competition
    from comp.stages.training import variant_names

    for rows, expected in ((1_000, ["extra_trees", "linear"]), (9_999, ["extra_trees", "linear"]),
                           (10_000, ["hgb_long", "extra_trees", "linear", "mlp"])):
        cfg = load_config([f"competition={_table_of(tmp_path, rows)}"])
        competition, task, _ = open_competition(cfg)
        assert variant_names(cfg, competition, task) == expected
    cfg = load_config(["competition=demo:wine", "baseline.variants=[hgb_long,mlp]"])
    competition, task, _ = open_competition(cfg)
    assert variant_names(cfg, competition, task) == ["hgb_long", "mlp"]


def test_gradient_boosting_starts_from_31_leaves_on_a_fold_of_30000_rows_and_tune_searches_around_them(tmp_path):
    """On large tables 31 leaves scored better (flights, films' ratings) or the same: hgb's trees
    start there from 30,000 training rows a fold, and stage tune's knob starts where the
    baseline's fold models were (a table of 40,000 rows: 32,000 a fold)."""
    import keras_tuner as kt

    from comp.api import TABULAR, InputSpec
    from comp.competition import open_competition
    from comp.config import load_config
    from comp.registry import MODELS
    from comp.stages.tune import space
    from comp.training.cv import rows_a_fold

    class Regression:
        estimator_role = "regressor"

    def leaves(name, rows):
        spec = InputSpec((1,), TABULAR, (), rows=rows)
        return MODELS.load(name).build(spec, Regression(), kt.HyperParameters()).get_params()["max_leaf_nodes"]

    assert (leaves("hgb", 29_999), leaves("hgb", 30_000)) == (15, 31)
    assert (leaves("hgb_long", 29_999), leaves("hgb_long", 30_000)) == (31, 31)
    for rows, start in ((1_000, 15), (40_000, 31)):  # 800 and 32,000 rows a fold
        cfg = load_config([f"competition={_table_of(tmp_path, rows)}"])
        competition, task, _ = open_competition(cfg)
        split = np.arange(rows) % 5  # what stage tune reads the run's rows a fold from (fold_training_rows)
        knob = next(k for k in space(cfg, competition, task, 1e-3, None, rows_a_fold(split))
                    if k.key == "model.hp.max_leaf_nodes")
        assert knob.default == start, (rows, knob)


def test_folds_of_unequal_size_build_gradient_boosting_from_the_run_s_row_count(tmp_path):
    """Every fold of a run builds the same settings: a plugin reads the run's rows a fold
    (37,501 rows in 5 folds: 30,001), not its own fold's, so a larger first fold (28,501 rows
    left to learn from) does not train 15 leaves where the others train 31."""
    import pickle

    from comp.data.inputs import TableInputs
    from comp.tasks import make_task
    from comp.tasks.base import TaskSource
    from comp.training.cv import cross_validate
    from comp.training.spec import ModelSpec, TrainSpec

    rows = 37_501
    rng = np.random.default_rng(0)
    x = rng.normal(size=rows).astype("float32")
    target = pd.DataFrame({"y": x + rng.normal(scale=0.5, size=rows)})
    task = make_task("regression", TaskSource(target, target.assign(id="r")[["id", "y"]], "id", ("y",)))
    fold_of = np.concatenate([np.zeros(9_000, int), 1 + np.arange(rows - 9_000) % 4])
    inputs = TableInputs({"x": x}, {}, {"x": "x"}, set())
    cross_validate(inputs, task.encode(target), fold_of, task, ModelSpec("hgb", {"max_iter": 50}),
                   TrainSpec(lr=0.0, epochs=1), tmp_path, seed=0, only=[0, 1], log=lambda line: None)
    for k in (0, 1):
        saved = pickle.loads((tmp_path / f"fold_{k}/model.pkl").read_bytes())
        assert saved["spec"].rows == 30_001
        assert saved["estimator"].get_params()["max_leaf_nodes"] == 31, k


def test_a_failed_fold_or_a_split_forward_in_time_keeps_the_row_count_the_folds_learn_from(tmp_path):
    """The rows a fold is the mean of what the folds' models learn from: a forward-chained
    split's folds learn from 1/6 to 5/6 of the rows (48,000: 24,000 on average, so 15 leaves,
    not the 38,400 of a shuffled split), and a fold taken out after its model failed leaves
    the others building what the baseline built (its rows are still learnt from)."""
    import pickle

    from comp.data.inputs import TableInputs
    from comp.tasks import make_task
    from comp.tasks.base import TaskSource
    from comp.training.cv import HISTORY, cross_validate, rows_a_fold, without_folds
    from comp.training.spec import ModelSpec, TrainSpec

    forward = np.repeat([HISTORY, 0, 1, 2, 3, 4], 8_000)
    assert rows_a_fold(forward) == 24_000
    assert rows_a_fold(without_folds(forward, [4])) == 20_000  # fewer: why the stages pass the written split's
    rows = 38_003
    rng = np.random.default_rng(0)
    x = rng.normal(size=rows).astype("float32")
    target = pd.DataFrame({"y": x + rng.normal(scale=0.5, size=rows)})
    task = make_task("regression", TaskSource(target, target.assign(id="r")[["id", "y"]], "id", ("y",)))
    written = np.arange(rows) % 5
    assert rows_a_fold(written) == 30_402
    inputs = TableInputs({"x": x}, {}, {"x": "x"}, set())
    cross_validate(inputs, task.encode(target), without_folds(written, [2]), task, ModelSpec("hgb", {"max_iter": 50}),
                   TrainSpec(lr=0.0, epochs=1), tmp_path, seed=0, only=[0], log=lambda line: None,
                   spec_rows=rows_a_fold(written))
    saved = pickle.loads((tmp_path / "fold_0/model.pkl").read_bytes())
    assert saved["spec"].rows == 30_402 and saved["estimator"].get_params()["max_leaf_nodes"] == 31


def test_the_long_configuration_fits_past_where_three_hundred_iterations_underfit():
    """On 12,000 rows of scikit-learn's Friedman #1 function (little noise), gradient boosting's
    300 iterations underfit: hgb_long, fitted in steps under a deadline like every table model,
    ran on until its early stopping ended it and scored RMSE 0.324 on 3,000 new rows against
    hgb's 0.391."""
    import keras_tuner as kt
    from sklearn.datasets import make_friedman1

    from comp import clock
    from comp.registry import MODELS
    from comp.training.bounded_fit import BoundedFit

    class Regression:
        estimator_role = "regressor"

    x, y = make_friedman1(15_000, noise=0.1, random_state=0)
    x = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    rmse = {}
    for name in ("hgb", "hgb_long"):
        model = MODELS.load(name).build(None, Regression(), kt.HyperParameters())
        BoundedFit(clock.now() + 600)(model, x[:12_000], y[:12_000])
        rmse[name] = float(np.sqrt(np.mean((model.predict(x[12_000:]) - y[12_000:]) ** 2)))
        if name == "hgb_long":
            assert 300 < model.n_iter_ < 3000  # past hgb's cap, and its own early stopping ended it
    assert rmse["hgb_long"] < 0.9 * rmse["hgb"], rmse


def test_the_mlp_reads_numbers_robustly_scaled_clipped_and_embedded(tmp_path):
    """RealMLP's preprocessing inside the model: a number is centred on its median, divided
    by its middle half's width and smoothly clipped to +-3, so an outlier a million times
    the spread keeps its order without taking over; periodic embeddings sit beside it; the
    saved model reloads and gives the same predictions from the raw columns."""
    import keras
    import keras_tuner as kt
    import tensorflow as tf

    from comp.data.inputs import TableInputs
    from comp_plugins.models import mlp

    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, np.nan, 1e6], "float32")
    colour = np.array(["red", "blue", "red", "", "blue", "red", "red"], object)
    spec = TableInputs({"size": values}, {"colour": colour}, {"size": "size", "colour": "colour"}, {"size"}).spec()
    size = spec.columns[0]
    assert (size.median, size.spread) == (3.5, 2.5)  # quartiles 2.25 and 4.75 of the six finite values

    class Head:
        def head(self, x):
            return keras.layers.Dense(1)(x)

    model = mlp(spec, Head(), kt.HyperParameters())
    clipped = keras.Model(model.inputs, model.get_layer("size_fill").output)
    inputs = {"size": tf.constant(values.reshape(-1, 1)), "colour": tf.constant(colour.astype(str).reshape(-1, 1))}
    got = clipped(inputs).numpy().ravel()
    x = (values - 3.5) / 2.5
    expected = np.where(np.isnan(x), 0.0, x / np.sqrt(1 + (x / 3) ** 2))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert 2.99 < got[-1] <= 3.0 and got[4] < got[-1]
    assert model.get_layer("table-numbers-periodic").output.shape == (None, 8)
    model.save(tmp_path / "mlp.keras")
    again = keras.saving.load_model(tmp_path / "mlp.keras")
    np.testing.assert_allclose(again(inputs).numpy(), model(inputs).numpy(), rtol=1e-6)



def _digit_table(workdir):
    """Scikit-learn's 1,797 8x8 digits as a table of 64 numbers: 1,500 training rows."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    frame = pd.DataFrame(digits.data, columns=[f"p{i}" for i in range(64)])
    frame.insert(0, "id", np.arange(len(frame)))
    frame["digit"] = [f"d{v}" for v in digits.target]
    folder = workdir / "digit-table"
    folder.mkdir()
    frame.iloc[:1500].to_csv(folder / "train.csv", index=False)
    frame.iloc[1500:].drop(columns="digit").to_csv(folder / "test.csv", index=False)
    frame.iloc[1500:][["id", "digit"]].to_csv(folder / "sample_submission.csv", index=False)
    return folder


def test_under_a_budget_gradient_boosting_takes_the_time_it_needs_and_the_portfolio_what_it_leaves(comp, workdir):
    """An estimator's schedule is fixed: given every model an equal share, a 262,000-row
    table's portfolio had each of them cut short (hgb at 45-92 of 300 iterations). The main
    estimator's folds now come first, with all of the time, and the others share the rest."""
    folder = _digit_table(workdir)
    code, out, err = comp("run", "stage=baseline", f"competition={folder}", "budget=50s", "model.hp.max_iter=50",
                          "baseline.variants=[extra_trees,linear]")
    assert code == 0, err
    assert "hgb's folds first, the other 2 in what it leaves (5 folds each)" in out
    assert "stopped by the budget" not in out.split("variant extra_trees")[0]  # hgb's 50 iterations fitted
    record = json.loads((workdir / "runs/digit-table/baseline/stage.json").read_text())
    assert list(record["variants"]) == ["extra_trees", "linear"]
    assert record["score"] > 0.9 and all(v["score"] > 0.85 for v in record["variants"].values())


def test_a_variant_the_time_left_cannot_train_usefully_is_left_out(comp, workdir, monkeypatch):
    """After the main estimator, a variant whose fold share would be under VARIANT_FLOOR of
    the main model's seconds a fold is left out and said so (patched here so that every
    share is under it): the baseline is published with the main model alone."""
    from comp.stages import training

    monkeypatch.setattr(training, "VARIANT_FLOOR", 1e9)
    folder = _digit_table(workdir)
    code, out, err = comp("run", "stage=baseline", f"competition={folder}", "budget=40s",
                          "baseline.variants=[extra_trees,linear]")
    assert code == 0, err
    assert "budget: extra_trees, linear left out: the " in out
    record = json.loads((workdir / "runs/digit-table/baseline/stage.json").read_text())
    assert record["variants_left_out"] == ["extra_trees", "linear"] and "variants" not in record
    assert record["score"] > 0.9 and not (workdir / "runs/digit-table/baseline/variants").exists()


@pytest.mark.slow  # ~38 s; the plan beside an estimator stays in the default run (tests/test_planner.py)
def test_beside_gradient_boosting_stage_check_measures_the_network(comp, workdir):
    """Gradient boosting needs no LR and costs seconds a fold; the MLP beside it in the
    portfolio needs both an LR and a plan, so stage check runs its checks on the MLP (before,
    it skipped them all and the MLP trained at the fallback LR 0.001)."""
    folder = _digit_table(workdir)
    code, out, err = comp("run", "stage=check", f"competition={folder}", "baseline.variants=[linear,mlp]")
    assert code == 0, err
    check = json.loads((workdir / "runs/digit-table/check/stage.json").read_text())
    assert check["model"] == "mlp" and check["beside"] == "hgb" and check["speed"]["row_seconds"] > 0
    assert check["suggested_lr"] > 0 and not check["skipped"]
    assert "[check] model hgb is not a Keras model: the checks are for mlp" in out
    # Keyed on the network they check, not on the settings that pick it: a portfolio that
    # keeps the MLP reruns nothing, one without it reruns them.
    code, out, err = comp("run", "stage=check", f"competition={folder}", "baseline.variants=[extra_trees,mlp]")
    assert code == 0 and "[check] unchanged" in out
    code, out, err = comp("run", "stage=check", f"competition={folder}", "baseline.variants=[linear]")
    assert code == 0 and "all checks skipped: model hgb is not a Keras model" in out
    # Without a network beside it (the default portfolio under 10,000 rows has no MLP) they are skipped.
    code, out, err = comp("run", "stage=check", "competition=demo:wine")
    assert code == 0 and "all checks skipped: model hgb is not a Keras model" in out


@pytest.mark.slow
def test_beside_gradient_boosting_the_network_is_planned_and_trains_after_the_estimators(comp, workdir):
    """Under a budget the run plan funds the MLP's schedule after the estimators' share, and
    the baseline trains the estimators first, the MLP last in the rest (a budget too short
    for a score worth asserting: what is checked is who gets the time)."""
    folder = _digit_table(workdir)
    # hgb at 50 iterations: the main estimator takes the time it needs first, and at 300 on
    # ten classes the estimators' quarter of the budget would be all its own
    code, out, err = comp("run", "stage=baseline", f"competition={folder}", "budget=50s", "model.hp.max_iter=50",
                          "baseline.variants=[extra_trees,linear,mlp]")
    assert code == 0, err
    run = workdir / "runs/digit-table"
    plan = json.loads((run / "plan.json").read_text())
    assert plan["network"] == "mlp" and plan["beside"] == "hgb" and 0 < plan["beside_seconds"] < plan["main_seconds"]
    assert "hgb and the other estimators" in out and "then mlp ~" in out
    assert ("for the 3 estimators and their 5 folds (hgb's folds first, the other 2 in what it leaves), the rest "
            "for mlp (the run plan)") in out
    record = json.loads((run / "baseline/stage.json").read_text())
    # hgb first, then the other estimators while a useful share is left, the MLP last in the rest
    trained = list(record["variants"])
    assert record["model"]["name"] == "hgb" and trained[-1] == "mlp"
    assert trained[:-1] + record.get("variants_left_out", []) == ["extra_trees", "linear"]
    # The MLP trained last: its folds' models were written after every estimator's.
    last_estimator = max(p.stat().st_mtime for p in run.glob("baseline/**/model.pkl"))
    assert min(p.stat().st_mtime for p in (run / "baseline/variants/mlp").glob("fold_*/*.keras")) > last_estimator


@pytest.mark.slow
def test_a_network_the_budget_buys_too_few_epochs_is_left_out_of_the_run(comp, workdir, monkeypatch):
    """Under a budget that buys the portfolio's MLP fewer than 12 epochs a fold beside the
    estimators, the plan leaves it out: the baseline trains the estimators alone, in all of
    the training time, and its configuration says so."""
    from comp_plugins import models

    monkeypatch.setattr(models.mlp, "min_rows", 1_000)  # the digit table's 1,500 rows get the MLP by default
    # a schedule no machine fits in 50 s, so that the MLP is left out on a fast one too
    monkeypatch.setattr("comp.planner.ENOUGH_EPOCHS", 400)
    folder = _digit_table(workdir)
    code, out, err = comp("run", "stage=baseline", f"competition={folder}", "budget=50s", "train.epochs=400",
                          "model.hp.max_iter=50")  # the estimators' time not all hgb's (above)
    assert code == 0, err
    run = workdir / "runs/digit-table"
    plan = json.loads((run / "plan.json").read_text())
    assert plan["left_out"] == "mlp" and plan["network"] == "" and plan["variants"] == ["extra_trees", "linear"]
    assert "mlp left out: ~" in out and "under the 400 it needs" in out
    record = json.loads((run / "baseline/stage.json").read_text())
    assert list(record["variants"]) == ["extra_trees", "linear"] and not (run / "baseline/variants/mlp").exists()
    import yaml

    stored = yaml.safe_load((run / "baseline/config.yaml").read_text())
    assert stored["config"]["baseline"]["variants"] == ["extra_trees", "linear"]
