"""Stage bag: the final configuration trained again with new seeds, each fold's mean its model."""
import json
import re

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SMOKE


def _record(workdir, stage):
    return json.loads((workdir / f"runs/digits/{stage}/stage.json").read_text())


def test_more_seeds_of_each_fold_are_published_as_their_mean_and_predict_with_it(comp, workdir):
    code, out, err = comp("run", "stage=predict", *SMOKE, "bag.seeds=1", "predict.source=bag")
    assert code == 0, err
    record = _record(workdir, "bag")
    assert record["fold_paths"] == [["baseline/fold_0", "bag/seed_2/fold_0"], ["baseline/fold_1", "bag/seed_2/fold_1"]]
    assert record["seeds"] == [2, 2] and record["why"] == "every fold has 1 more seed(s)"
    units = pd.read_csv(workdir / "runs/digits/bag/units.csv")
    assert units[["seed", "fold"]].values.tolist() == [[2, 1], [2, 2]]
    # Each fold's OOF prediction is the mean of the baseline's fold model and the new seed's,
    # neither of which trained on the fold's rows.
    folds = pd.read_csv(workdir / "runs/digits/split/folds.csv")["fold"].to_numpy()
    base = np.load(workdir / "runs/digits/baseline/oof.npy")
    oof = np.load(workdir / "runs/digits/bag/oof.npy")
    for k in range(2):
        seed = np.load(workdir / f"runs/digits/bag/seed_2/fold_{k}/val_pred.npy")
        assert not np.allclose(seed, base[folds == k], atol=1e-3)  # another seed: another model
        np.testing.assert_allclose(oof[folds == k], (base[folds == k] + seed) / 2, rtol=1e-6, atol=1e-7)
    assert "[bag] fold 1/2 seed 2: accuracy=" in out
    assert "[predict] 360 test rows from bag: bag x1.00 (2 folds)" in out
    test = np.load(workdir / "runs/digits/predict/test_pred.npy")
    assert test.shape == (360, 10) and np.allclose(test.sum(axis=1), 1.0, atol=1e-4)
    # With test-time views the ensemble runs each of a fold's models through them, then averages.
    code, out, err = comp("run", "stage=ensemble", *SMOKE, "bag.seeds=1", "predict.tta=3")
    assert code == 0, err
    assert re.search(r"^\[ensemble\] bag: OOF accuracy 0\.\d+, with 2 test-time views 0\.\d+", out, re.MULTILINE)
    members = _record(workdir, "ensemble")["members"]
    bagged = [m for m in members if m["name"] == "bag"]
    assert not bagged or [[r["model"] for r in refs] for refs in bagged[0]["models"]] == record["fold_paths"]


def test_without_a_budget_auto_bags_nothing_and_a_seeded_estimator_stops_at_once(comp, workdir):
    code, out, err = comp("run", "stage=bag", *SMOKE)
    assert code == 0, err
    assert "[bag] nothing trained: bag.seeds=auto trains more seeds only under budget= (bag.seeds=N: N more a fold)" \
        in out
    assert _record(workdir, "bag")["fold_models"] is False
    # Gradient boosting with its fixed random_state predicts the same from any seed.
    wine = ("competition=demo:wine", "run=wine", "bag.seeds=3", "baseline.variants=[]")
    code, out, err = comp("run", "stage=bag", *SMOKE, *wine)
    assert code == 0, err
    record = json.loads((workdir / "runs/wine/bag/stage.json").read_text())
    assert record["why"] == "model hgb predicts the same with another seed: nothing to bag"
    assert record["fold_models"] is False and record["units"] == 0
    assert not list((workdir / "runs/wine/bag").glob("seed_*"))  # the one fold model it tried is not kept
    code, out, err = comp("run", "stage=ensemble", *SMOKE, *wine)
    assert code == 0, err
    assert "[ensemble] baseline: OOF" in out and "[ensemble] bag" not in out  # nothing of its own to blend


def test_each_model_bag_adds_is_charged_what_it_costs_the_ensemble_and_prediction(tmp_path):
    """Under a budget a fold model costs the ensemble a pass over its fold, and prediction one
    over the test set once a fold holds more models than the plan's reserve was made for: bag
    stops that much earlier and moves the training's end for prediction's part."""
    from types import SimpleNamespace

    from comp.clock import TimeBox
    from comp.files import write_json
    from comp.run_plan import PLAN
    from comp.stages.bag import _after_cost

    write_json(tmp_path / PLAN, {"model_after": {"ensemble": 1.5, "predict": 2.5}, "reserved_models_a_fold": 2})
    ctx = SimpleNamespace(rundir=SimpleNamespace(path=tmp_path), time=TimeBox.of(100.0))
    cost = _after_cost(ctx)
    assert cost(2) == (1.5, 0.0)  # a fold's second model: prediction's reserve holds it
    assert cost(3) == (1.5, 2.5)
    unlimited = SimpleNamespace(rundir=SimpleNamespace(path=tmp_path), time=TimeBox())
    assert _after_cost(unlimited)(5) == (0.0, 0.0)  # without a budget nothing is charged


@pytest.mark.slow  # ~50 s; bagging a Keras model's seeds stays in the default run (CI's 20 minutes)
def test_beside_a_seeded_estimator_the_network_is_bagged_instead(comp, workdir):
    """A table's gradient boosting predicts the same from any seed; the MLP beside it does
    not, so its seeds are what the stage trains: each fold's mean of the MLP's models is
    published, and the ensemble can blend it."""
    from tests.test_table_portfolio import _digit_table

    folder = _digit_table(workdir)
    table = (f"competition={folder}", "baseline.variants=[mlp]", "ensemble.candidates=[fold,variants]")
    code, out, err = comp("run", "stage=bag", *SMOKE, *table, "bag.seeds=1")
    assert code == 0, err
    assert "[bag] model hgb predicts the same with another seed: nothing to bag; the network beside it instead" in out
    record = json.loads((workdir / "runs/digit-table/bag/stage.json").read_text())
    assert record["bagged"] == "baseline/mlp" and record["model"]["name"] == "mlp" and record["units"] == 2
    assert record["fold_paths"] == [[f"baseline/variants/mlp/fold_{k}", f"bag/mlp/seed_2/fold_{k}"] for k in range(2)]
    assert not (workdir / "runs/digit-table/bag/seed_2").exists()  # the seed gradient boosting got is not kept
    assert record["score"] > 0.8  # accuracy of two MLPs' mean a fold; chance 0.1
    code, out, err = comp("run", "stage=ensemble", *SMOKE, *table, "bag.seeds=1")
    assert code == 0, err
    assert "[ensemble] bag: OOF accuracy" in out
