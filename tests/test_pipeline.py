"""End to end on the real digits demo, shrunk with experiment=smoke."""
import json
import re
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from comp.demo import cache_root, solution_path
from tests.conftest import SMOKE, copy_competition, read_submission


def _record(workdir, stage, run="digits"):
    return json.loads((workdir / "runs" / run / stage / "stage.json").read_text())


def test_all_stages_write_a_valid_submission(comp, workdir, demo):
    code, out, err = comp("run", "stage=all", *SMOKE)
    assert code == 0, err
    (path,) = (workdir / "submissions").glob("*.csv")
    oof = pd.read_csv(workdir / "runs/digits/baseline/oof.csv", dtype=str)
    oof_accuracy = (oof["label"] == oof["prediction"]).mean()
    assert path.name == f"digits-baseline-accuracy={oof_accuracy:.5f}.csv"
    assert f"OOF accuracy = {oof_accuracy:.5f}" in out

    sample = read_submission(demo / "sample_submission.csv")
    submission = read_submission(path)
    assert list(submission.columns) == list(sample.columns)
    assert submission["id"].tolist() == sample["id"].tolist()
    assert set(submission["label"]) <= {str(d) for d in range(10)}
    solution = read_submission(solution_path(cache_root()))
    assert (submission["label"] == solution["label"]).mean() > 0.5  # 3 epochs, 2 folds

    info = yaml.safe_load((workdir / "runs/digits/config.yaml").read_text())
    assert info["seed"] == 42 and info["config"]["split"]["folds"] == 2
    assert info["versions"]["tensorflow"] and info["versions"]["keras"]
    assert "revision" in info["git"]
    folds = pd.read_csv(workdir / "runs/digits/split/folds.csv", dtype=str)
    assert folds["id"].tolist() == pd.read_csv(demo / "train.csv", dtype=str)["id"].tolist()
    assert not list((workdir / "runs/digits").glob("*.partial"))

    # Unchanged inputs and config: every stage is skipped, nothing new is written.
    code, out, _ = comp("run", "stage=all", *SMOKE)
    from comp.stages import STAGES

    assert code == 0 and out.count("skipped (overwrite=true reruns it)") == len(STAGES)
    assert [p.name for p in (workdir / "submissions").glob("*.csv")] == [path.name]

    # A training change reruns baseline and what reads it, not split.
    code, out, _ = comp("run", "stage=all", *SMOKE, "train.epochs=2")
    assert "[split] unchanged" in out and "[baseline] 2 folds" in out and "[submit] wrote" in out


def test_overwrite_reruns_and_same_seed_gives_same_result(comp, workdir):
    assert comp("run", "stage=baseline", *SMOKE)[0] == 0
    first = np.load(workdir / "runs/digits/baseline/oof.npy")
    code, out, _ = comp("run", "stage=baseline", *SMOKE, "overwrite=true")
    assert code == 0 and "[split] unchanged" in out and "[baseline] 2 folds" in out
    np.testing.assert_array_equal(first, np.load(workdir / "runs/digits/baseline/oof.npy"))


def test_a_stage_alone_runs_the_stages_it_reads(comp, workdir):
    code, out, _ = comp("run", "stage=predict", *SMOKE, "run=solo")
    assert code == 0
    assert "[split]" in out and "[baseline]" in out and "[predict]" in out and "[submit]" not in out
    assert (workdir / "runs/solo/predict/test_pred.npy").is_file()
    assert not (workdir / "submissions").exists()
    assert _record(workdir, "predict", "solo")["inputs"] == {"ensemble": "ensemble"}
    assert _record(workdir, "ensemble", "solo")["inputs"] == {"split": "split", "baseline": "baseline"}


def test_budget_plans_training_and_still_submits(comp, workdir):
    began = time.monotonic()
    # 40 s: what this run can keep on a loaded 2-core machine (start-up, inspect, checks and
    # one epoch per fold take ~30 s there); the budget counts from the command's start.
    code, out, err = comp("run", "stage=all", *SMOKE, "budget=40s", "train.epochs=100000", "train.patience=100000",
                          "train.schedule=cosine", "train.warmup=1")
    elapsed = time.monotonic() - began
    assert code == 0, err
    record = _record(workdir, "baseline")
    assert all(p["budgeted"] and p["epochs"] < 100000 for p in record["plan"])  # planned to fit, not 100000
    assert "plan:" in out
    # The schedule is planned to end decayed in the time it gets, not cut: what was planned ran.
    assert "planned, the schedule shrunk from train.epochs=100000 to fit, decaying to its end" in out
    for fold, plan in enumerate(record["plan"]):
        assert plan["max_epochs"] == 100000 and 1 <= plan["epochs"]
        ran = len(pd.read_csv(workdir / f"runs/digits/baseline/fold_{fold}/history.csv"))
        assert ran == plan["epochs"] or record["stopped_by_budget"]
    history = pd.read_csv(workdir / "runs/digits/baseline/fold_0/history.csv")
    if not record["stopped_by_budget"] and len(history) >= 4:  # ran its plan: the LR ended near its floor
        assert history["lr"].iloc[-1] < 0.2 * history["lr"].max()
    assert list((workdir / "submissions").glob("digits-baseline-accuracy=*.csv"))
    assert elapsed < 40 + 10  # the budget is for the whole command, prediction included
    # The training stages' split of the budget is planned and printed, with what each used.
    assert "budget plan: 40s; 15s kept for prediction and submission, the training stages share the rest: " \
           "baseline 40%" in out
    for stage in ("baseline", "regularize", "tune"):
        spent = _record(workdir, stage)["budget"]
        assert 0 <= spent["used_s"] and 0 <= spent["given_s"] <= 40
        assert f"[budget] {stage} gets {spent['given_s']:.0f}s" in out
        assert f"[budget] {stage} used {spent['used_s']:.0f}s of {spent['given_s']:.0f}s" in out


def test_a_search_that_cannot_fit_one_trial_does_not_start_and_says_so(comp, workdir):
    code, out, err = comp("run", "stage=tune", *SMOKE, "budget=1s", "tune.coarse_trials=3", "tune.fine_trials=2")
    assert code == 0, err
    assert re.search(r"^\[tune\] not started: 0s for the search cannot fit one coarse and one fine trial \(~\d+s "
                     r"at the baseline's speed\)", out, re.MULTILINE)
    assert not re.search(r" -\d+s", out)  # no plan line shows a negative time
    trials = pd.read_csv(workdir / "runs/digits/tune/trials.csv")
    assert trials["phase"].tolist() == ["start"]
    assert _record(workdir, "tune")["verdict"] == "no fine trial finished: the starting configuration stands"


@pytest.mark.slow  # ~27 s: `pytest -m slow` (CI's 20 minutes)
def test_string_labels_keep_leading_zeros(comp, workdir, demo):
    root = copy_competition(demo, workdir / "zeros")
    for name in ("train.csv", "sample_submission.csv"):
        frame = pd.read_csv(root / name, dtype=str)
        frame["label"] = "0" + frame["label"]
        frame.to_csv(root / name, index=False)
    code, _, err = comp("run", "stage=all", *SMOKE, f"competition={root}")
    assert code == 0, err
    (path,) = (workdir / "submissions").glob("zeros-baseline-*.csv")
    labels = set(read_submission(path)["label"])
    assert labels and all(len(l) == 2 and l.startswith("0") for l in labels)


def test_augmentation_plugins_are_in_the_trained_model(comp, workdir):
    import keras

    code, _, err = comp("run", "stage=baseline", *SMOKE, "train.augmentations=[shift,rotate]")
    assert code == 0, err
    assert _record(workdir, "baseline")["model"]["augmentations"] == ["shift", "rotate"]
    model = keras.saving.load_model(workdir / "runs/digits/baseline/fold_0/model.keras")
    assert {"aug_shift", "aug_rotate"} <= {layer.name for layer in model.layers}


def test_unknown_augmentation_names_closest(comp, workdir):
    code, _, err = comp("run", "stage=baseline", *SMOKE, "train.augmentations=[shfit]")
    assert code == 2 and "no augmentation plugin named 'shfit' (closest: shift" in err


def test_a_changed_comp_yaml_or_description_reruns_the_stages(demo, tmp_path, comp, monkeypatch):
    from tests.conftest import copy_competition

    root = copy_competition(demo, tmp_path / "c")
    monkeypatch.chdir(tmp_path)
    assert comp("run", "stage=split", f"competition={root}")[0] == 0
    assert "skipped" in comp("run", "stage=split", f"competition={root}")[1]
    (root / "description.md").write_text("Submissions are evaluated on the macro F1 score.\n")
    code, out, _ = comp("run", "stage=split", f"competition={root}")
    assert code == 0 and "skipped" not in out
    (root / "comp.yaml").write_text("metric: accuracy\n")
    code, out, _ = comp("run", "stage=split", f"competition={root}")
    assert code == 0 and "skipped" not in out
