"""Stage regularize on the real digits demo (shrunk): one change at a time, kept only beyond noise."""
import json
import math
import shutil

import pandas as pd
import pytest
import yaml

from comp.config import load_config
from comp.stages.regularize import ordered
from tests.conftest import SMOKE


def _record(workdir, stage, run="digits"):
    return json.loads((workdir / "runs" / run / stage / "stage.json").read_text())


def test_auto_order_is_expected_gain_per_second_and_cutmix_last():
    names = [c.name for c in ordered(load_config())]
    assert names[0] == "label_smoothing" and names[-1] == "cutmix"
    assert [c.name for c in ordered(load_config(["regularize.changes=[mixup,weight_decay]"]))] == [
        "mixup", "weight_decay"]


def test_changes_are_tried_one_at_a_time_and_kept_only_beyond_noise(comp, workdir, demo):
    code, out, err = comp("run", "stage=regularize", *SMOKE, "regularize.changes=[label_smoothing,weight_decay,"
                          "smaller_input]", "regularize.time=100", "train.label_smoothing=0")
    assert code == 0, err
    table = pd.read_csv(workdir / "runs/digits/regularize/table.csv")
    assert table["change"].tolist() == ["baseline", "label_smoothing", "weight_decay", "smaller_input"]
    baseline = _record(workdir, "baseline")
    first = table.iloc[0]
    # The reference is the baseline's own folds: nothing retrained for it.
    assert math.isclose(first["oof"], baseline["score"]) and first["verdict"] == "reference"
    assert table.iloc[3]["verdict"] == "not applicable: images of 8x8 are already small"
    reference = first["oof"]
    for _, row in table.iloc[1:3].iterrows():
        assert math.isclose(row["gain"], row["oof"] - reference, abs_tol=1e-9)
        kept = row["gain"] > 1e-9 and row["gain"] - row["noise"] > 1e-9  # equal to the noise is noise
        assert (row["verdict"] == "kept") == kept
        assert row["seconds"] > 0 and not math.isnan(row["fold_std"])
        if kept:
            reference = row["oof"]
    record = _record(workdir, "regularize")
    assert record["kept"] == [r["change"] for _, r in table.iterrows() if r["verdict"] == "kept"]
    assert "tried one at a time:" in out and "label_smoothing" in out

    # best.yaml is a config file: a baseline trained from it uses the kept changes (in the same
    # run: its inspect, split and check are reused).
    best = yaml.safe_load((workdir / "runs/digits/regularize/best.yaml").read_text())
    assert best["train"]["lr"] == record["lr"]
    shutil.copy(workdir / "runs/digits/regularize/best.yaml", workdir / "best.yaml")
    code, out, err = comp("run", "stage=baseline", *SMOKE, "train.label_smoothing=0", "config=best.yaml")
    assert code == 0, err
    assert "[check] unchanged" in out or "[check]" not in out
    recipe = _record(workdir, "baseline")["recipe"]
    assert recipe["label_smoothing"] == best["train"].get("label_smoothing", 0.0)
    assert recipe["weight_decay"] == best["train"].get("weight_decay", 0.01)


def test_what_does_not_fit_the_time_is_listed_as_not_tried(comp, workdir, demo):
    code, out, err = comp("run", "stage=regularize", *SMOKE, "regularize.changes=[label_smoothing,mixup,weight_decay]",
                          "regularize.time=0")
    assert code == 0, err
    table = pd.read_csv(workdir / "runs/digits/regularize/table.csv")
    verdicts = dict(zip(table["change"], table["verdict"]))
    # train.label_smoothing=auto already smooths single labels by 0.1: nothing to try
    assert verdicts.pop("label_smoothing") == "not applicable: train.label_smoothing is already 0.1 (auto)"
    assert len(verdicts) == 3 and all(v.startswith("not tried: needs ~") for v in list(verdicts.values())[1:])
    assert not (workdir / "runs/digits/regularize/trials").exists()
    assert _record(workdir, "regularize")["kept"] == []


def test_bad_search_settings_stop_before_any_work(comp, workdir, demo):
    code, out, err = comp("run", "stage=all", *SMOKE, "regularize.changes=[dropoutt]")
    assert code == 2
    assert err.strip().splitlines()[-1].endswith("regularize.changes: no change named 'dropoutt'; the changes: "
                                                 "label_smoothing, weight_decay, mixup, stronger_augmentation, "
                                                 "model_regularizers, flip, smaller_input, cutmix")
    code, out, err = comp("run", "stage=all", *SMOKE, "tune.space={train.lrr: [0.001, 0.01]}")
    assert code == 2 and "tune.space.train.lrr: not a searched knob here" in err
    code, out, err = comp("run", "stage=all", *SMOKE, "regularize.folds=1")
    assert code == 2 and "regularize.folds=1 gives no fold-wise noise estimate" in err
    code, out, err = comp("run", "stage=baseline", *SMOKE, "config=no/such.yaml")
    assert code == 2 and "config=no/such.yaml: no such file" in err
    assert not (workdir / "runs").exists()


@pytest.mark.slow  # ~1.5 min: `pytest -m slow` (tests/test_tune.py resumes a killed search in the default run)
def test_a_killed_search_resumes_from_its_oracle_without_redoing_finished_folds(workdir, demo):
    """regularize is a keras-tuner search (one change at a time is its oracle): killed during
    its second change, the same command resumes there, keeping the first change's verdict and
    the second's finished fold."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    args = [str(Path(sys.executable).with_name("comp")), "run", "stage=regularize", *SMOKE, "regularize.time=100",
            "regularize.changes=[label_smoothing,weight_decay]", "train.label_smoothing=0"]
    partial = workdir / "runs/digits/regularize.partial"
    second = partial / "trials/weight_decay/fold_0/done.json"
    proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while not second.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert second.is_file(), "the kill point was never reached"
    finished = {p.relative_to(partial): p.stat().st_mtime_ns for p in partial.glob("trials/*/fold_*/done.json")}
    assert len(finished) == 3  # label_smoothing's two folds, weight_decay's first

    result = subprocess.run(args, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    published = workdir / "runs/digits/regularize"
    assert {p: (published / p).stat().st_mtime_ns for p in finished} == finished  # nothing trained again
    assert "label_smoothing:" not in result.stdout  # its verdict came back with the oracle's state
    assert "weight_decay:" in result.stdout
    table = pd.read_csv(published / "table.csv")
    assert table["change"].tolist() == ["baseline", "label_smoothing", "weight_decay"]
    assert not table["verdict"].str.startswith("not").any()
