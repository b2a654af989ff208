"""Stage tune on the real digits demo (shrunk): keras-tuner oracles, cross-validated trials,
coarse to fine, resumable, memory flat across trials, chief and workers on localhost."""
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import SMOKE, comp_subprocess

# A start that is easy to beat (LR 1e-5 for 3 epochs) and a small space: the fine trials
# must win beyond noise, so the result trains on every fold and predict uses it.
BAD_START = ("train.lr=1e-5", "tune.space={train.lr: [0.002, 0.006], model.hp.filters: [16, 32], "
             "model.hp.blocks: [1, 2]}", "tune.time=100")


def _record(workdir, stage, run="digits"):
    return json.loads((workdir / "runs" / run / stage / "stage.json").read_text())


@pytest.mark.slow  # ~2 min: `pytest -m slow` (CI's 20 minutes do not hold it)
def test_ten_cross_validated_trials_coarse_to_fine_beat_a_bad_start(workdir, demo):
    result = comp_subprocess("run", "stage=all", *SMOKE, *BAD_START, "tune.coarse_trials=8", "tune.coarse_epochs=0.34",
                             "tune.fine_trials=2", "tune.oracle=random", "split.folds=4", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    trials = pd.read_csv(workdir / "runs/digits/tune/trials.csv")
    assert trials["phase"].tolist() == ["start"] + ["coarse"] * 8 + ["fine"] * 2
    done = trials.iloc[1:]
    # every trial ran to its end, or stopped going badly after a fold (FoldFloor) with its status saying so
    assert (done["status"].eq("COMPLETED") | done["status"].str.match(r"stopped after [12] fold\(s\): going badly")).all()
    assert done["epochs"].tolist() == [1] * 8 + [3] * 2  # coarse: a third of the baseline's 3 epochs
    assert done["train.lr"].astype(float).between(0.002, 0.006).all()
    # Fine ranges are narrowed around the coarse best: at most 3x either side of it.
    coarse = done[done["phase"] == "coarse"]
    best_lr = float(coarse.loc[coarse["oof"].idxmax(), "train.lr"])
    fine_lr = done[done["phase"] == "fine"]["train.lr"].astype(float)
    assert fine_lr.between(best_lr / 3 - 1e-12, best_lr * 3 + 1e-12).all()
    # Memory does not grow across trials (keras-tuner #702/#873 report leaks): after the
    # first trials have warmed the caches, ten trials add less than 40 MB.
    rss = done["rss_mb"].tolist()
    assert max(rss[2:]) - rss[2] < 40, rss

    record = _record(workdir, "tune")
    assert "beats the start" in record["verdict"]
    assert record["fold_models"] and record["chosen"]["score"] > record["start"]["score"]
    # Chosen on the three trial folds, it is published on the fourth alone (all four beside it).
    assert record["selected_on"] == [0, 1, 2] and record["honest_folds"] == [3]
    assert record["score"] == pytest.approx(record["fold_scores"][3])
    assert record["score_all_rows"] != record["score"]
    ensemble = _record(workdir, "ensemble")
    assert ensemble["honest_folds"] == [3] and ensemble["score"] == pytest.approx(record["score"])
    assert (workdir / "runs/digits/tune/fold_1/done.json").is_file()
    # predict reads the ensemble, whose one member is tune's fold models (it picked them on OOF)
    assert re.search(r"^\[predict\] \d+ test rows from ensemble: tune x1\.00 ", out, re.MULTILINE), out[-2000:]
    (path,) = (workdir / "submissions").glob("digits-tune-accuracy=*.csv")
    assert path.name == f"digits-tune-accuracy={ensemble['score']:.5f}.csv"
    assert "tensorboard" not in out + result.stderr  # keras-tuner 1.4.8's Tuner.run_trial imports it

    # best.yaml is a config file holding the tuned configuration (tests/test_regularize.py
    # trains a baseline from such a file).
    from comp.config import load_config

    best = load_config([f"config={workdir / 'runs/digits/tune/best.yaml'}"])
    chosen = record["chosen"]["changes"]
    assert best.train.lr == pytest.approx(chosen["train.lr"]) and best.train.batch_size == chosen["train.batch_size"]
    assert best.model.hp["filters"] == chosen["model.hp.filters"]


@pytest.mark.slow  # ~47 s on 2 cores: in `pytest -m slow` to keep CI under 20 minutes
def test_a_killed_search_resumes_without_redoing_finished_trials(workdir, demo):
    args = [str(Path(sys.executable).with_name("comp")), "run", "stage=tune", *SMOKE, "tune.coarse_trials=3",
            "tune.coarse_epochs=0.34", "tune.fine_trials=0", "tune.time=100",
            "tune.space={model.hp.filters: [16, 32], model.hp.blocks: [1, 2]}"]
    proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "coarse trial 0 (" in line:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert any("coarse trial 0 (" in line for line in seen), "".join(seen)[-3000:]
    partial = workdir / "runs/digits/tune.partial"
    finished = {p.relative_to(partial): p.stat().st_mtime_ns for p in partial.glob("trials/*/*/fold_*/done.json")}
    assert len(finished) >= 2  # trial 0's two folds

    result = subprocess.run(args, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # Folds finished before the kill are not trained again (keras-tuner may rerun the trial it
    # had not yet marked complete: it then reads the folds back in no time).
    published = workdir / "runs/digits/tune"
    assert {p: (published / p).stat().st_mtime_ns for p in finished} == finished
    assert "coarse trial 1 (" in result.stdout and "coarse trial 2 (" in result.stdout
    trials = pd.read_csv(published / "trials.csv")
    assert trials["trial"].dropna().astype(int).tolist() == [0, 1, 2]
    # scored to their end, or stopped going badly after a fold (FoldFloor): either way not lost to the kill
    assert (trials["status"].iloc[1:].eq("COMPLETED") | trials["status"].iloc[1:].str.startswith("stopped after")).all()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # ~1.5 min: `pytest -m slow`
def test_trials_spread_over_a_chief_and_two_workers_on_localhost(workdir, demo):
    common = [*SMOKE, "tune.coarse_trials=3", "tune.coarse_epochs=0.34", "tune.fine_trials=1", "tune.time=1000",
              "tune.space={model.hp.filters: [16, 32], model.hp.blocks: [1, 2]}"]
    prepared = comp_subprocess("run", "stage=regularize", *common, cwd=workdir)
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    port = _free_port()
    exe = str(Path(sys.executable).with_name("comp"))

    def start(tuner_id):
        env = {**os.environ, "KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": "127.0.0.1",
               "KERASTUNER_ORACLE_PORT": str(port)}
        log = open(workdir / f"{tuner_id}.log", "w")  # a file, not a pipe: nothing left running can block the test
        return subprocess.Popen([exe, "run", "stage=tune", *common], cwd=workdir, env=env, text=True, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

    procs = {name: start(name) for name in ("chief", "tuner0", "tuner1")}
    try:
        for proc in procs.values():
            proc.wait(timeout=400)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    outputs = [(workdir / f"{name}.log").read_text() for name in ("tuner0", "tuner1", "chief")]
    for proc, out in zip((procs["tuner0"], procs["tuner1"], procs["chief"]), outputs):
        assert proc.returncode == 0, out[-3000:]
    trials = pd.read_csv(workdir / "runs/digits/tune/trials.csv")
    assert trials["phase"].tolist() == ["start"] + ["coarse"] * 3 + ["fine"]
    # scored to their end, or stopped going badly after a fold (FoldFloor): either way not lost to the kill
    assert (trials["status"].iloc[1:].eq("COMPLETED") | trials["status"].iloc[1:].str.startswith("stopped after")).all()
    # Each worker ran some of the 4 trials; the chief ran none.
    ran = [len(re.findall(r"\[tune\] (?:coarse|fine) trial \d+ \(", o)) for o in outputs]
    assert ran[0] >= 1 and ran[1] >= 1 and ran[0] + ran[1] == 4 and ran[2] == 0, ran
    assert (workdir / "runs/digits/.tuner-tuner0/trials").is_dir()


def test_a_fold_past_its_floor_ends_the_cross_validation_there(tmp_path):
    """Real digits, three folds: a floor fold 0 cannot reach (accuracy above 1) trains fold 0
    only, scores its rows alone and says why the other folds were not trained."""
    import numpy as np
    from sklearn.datasets import load_digits

    from comp.data.inputs import ImageInputs
    from comp.tasks import make_task
    from comp.tasks.base import TaskSource
    from comp.training.cv import FoldFloor, cross_validate
    from comp.training.spec import ModelSpec, TrainSpec

    digits = load_digits()
    x = (digits.images[:600] * 255 / 16).astype("uint8")[..., None]
    labels = pd.DataFrame({"label": digits.target[:600].astype(str)})
    task = make_task("classification", TaskSource(labels, labels.assign(id="x")[["id", "label"]], "id", ("label",)))
    fold_of = np.arange(600) % 3
    said = []
    spec = TrainSpec(lr=3e-3, epochs=1, optimizer="adam", weight_decay=0.0, warmup=0.0, schedule="constant",
                     label_smoothing=0.0, diagnostics=False)
    result = cross_validate(ImageInputs(x), task.encode(labels), fold_of, task, ModelSpec("small_cnn", {}), spec,
                            tmp_path, seed=0, log=said.append, floor=FoldFloor({0: 1.01, 1: 1.01}))
    assert result.gave_up and len(result.folds) == 1 and result.scored.tolist() == (fold_of == 0).tolist()
    assert not (tmp_path / "fold_1").exists()
    assert any("past its floor 1.0100: the other 2 fold(s) are not trained" in line for line in said), said
    assert json.loads((tmp_path / "cv.json").read_text())["trained_folds"] == [0]


def test_a_trial_sent_to_a_new_child_process_counts_the_child_s_start_in_its_time(monkeypatch):
    """A new trial process takes seconds to start (a process, its imports, the devices, the
    folds) before its trial runs. They are the trial's: a trial sent with 30 s left that
    starts 20 s later and takes 0.6 s to set up gets ~9.4 s, so the search it belongs to does
    not end past its box."""
    import time
    from types import SimpleNamespace

    from comp.stages import trials

    boxes = []
    monkeypatch.setattr(trials.TrialRunner, "__init__", lambda self, *args, **kwargs: time.sleep(0.3))
    monkeypatch.setattr(trials.TrialRunner, "run", lambda self, changes, out, epochs, box, **kw: boxes.append(box))
    monkeypatch.setattr("comp.tasks.make_task", lambda *args: None)
    monkeypatch.setattr("comp.training.strategy.configure_devices", lambda *args: time.sleep(0.3))
    monkeypatch.setattr(trials, "replace", lambda ctx, **changes: ctx)  # a stand-in context
    competition = SimpleNamespace(task_kind="classification", task_source=lambda: None, metric="accuracy", root=".")
    ctx = SimpleNamespace(cfg=SimpleNamespace(train=SimpleNamespace(logical_cpus=1)), competition=competition)
    trials._child_trial(ctx, 1e-3, [0], {}, Path("."), 1, 30.0, False, True, None, time.time() - 20.0)
    assert 8.5 <= boxes[0].remaining() <= 9.45 and boxes[0].hard
    trials._child_trial(ctx, 1e-3, [0], {}, Path("."), 1, math.inf, False, False, None, time.time() - 20.0)
    assert not boxes[1].limited  # no budget: nothing to take off


def test_under_a_budget_a_search_starts_only_where_a_fine_trial_fits_after_a_coarse_one():
    """Only a fine trial can replace the start: under a budget the coarse phase ends in time for
    one full-length trial, a window that holds a coarse trial but not a fine one after it is
    handed on untouched, and the run plan asks for both (and the retraining) before funding."""
    from comp.config import load_config
    from comp.stages.tune import least_seconds, phases

    # unit 100 s (a full-length trial), coarse 25 s; costs: 8 coarse of 1/4 = 2 units, 4 fine
    assert phases(0.0, 600.0, 100.0, 25.0, 2.0, 4.0, budgeted=True, limited=True) == (125.0, 200.0, 600.0)
    assert phases(0.0, 140.0, 100.0, 25.0, 2.0, 4.0, budgeted=True, limited=True) == (125.0, 40.0, 140.0)  # not 46.7
    assert phases(0.0, 120.0, 100.0, 25.0, 2.0, 4.0, budgeted=True, limited=True) == (125.0, 0.0, 0.0)
    assert phases(0.0, 600.0, 100.0, 25.0, 2.0, 0.0, budgeted=True, limited=True)[1:] == (0.0, 0.0)
    # without a budget, tune.time's window runs what was asked for, coarse trials alone included
    assert phases(0.0, 120.0, 100.0, 25.0, 2.0, 0.0, budgeted=False, limited=True) == (25.0, 120.0, 120.0)
    cfg = load_config(["tune.coarse_epochs=0.25", "tune.folds=3"])
    assert least_seconds(cfg, 10.0, 40, 5) == 10.0 * (3 * 10 / 40 + 5)  # a coarse trial, a fine one, 2 folds more
    assert least_seconds(load_config(["tune.fine_trials=0"]), 10.0, 40, 5) is None
