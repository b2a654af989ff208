"""Hostile input, concurrent runs and damaged state, through the CLI as a user meets them:
the exit code, the one line, and earlier results unchanged (by checksum)."""
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pandas as pd
import pytest

from comp.rundir import RunLock
from tests.conftest import SMOKE, comp_subprocess, copy_competition

ONLY_SPLIT = ("stage=split", "split.duplicate_aware=false")


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"} if folder.exists() else {}


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("notice:")]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


# -- 1. concurrent runs ---------------------------------------------------------------------------
def test_a_second_command_on_a_run_in_use_is_refused_or_waits(comp, workdir):
    assert comp("run", *ONLY_SPLIT)[0] == 0
    before = _snapshot(workdir / "runs/digits")
    holder = RunLock(workdir / "runs/digits/.lock", "comp run stage=all (a test)")
    holder.acquire()
    try:
        code, _, err = comp("run", *ONLY_SPLIT, "overwrite=true")
        line = _one_line(err)
        assert code == 2 and f"is in use by pid {os.getpid()} on " in line and "comp run stage=all (a test)" in line
        assert "--wait" in line and _snapshot(workdir / "runs/digits") == before
        threading.Timer(1.0, holder.release).start()
        began = time.monotonic()
        code, out, err = comp("run", "--wait", *ONLY_SPLIT, "overwrite=true")
        assert code == 0, err
        assert time.monotonic() - began >= 0.9 and "[split] 5 folds" in out
    finally:
        holder.release()


def test_a_killed_holder_leaves_no_stuck_lock(workdir):
    script = ("import sys, time; from pathlib import Path; from comp.rundir import RunLock; "
              "RunLock(Path(sys.argv[1]), 'doomed').acquire(); print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(workdir / "runs/digits/.lock")],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    result = comp_subprocess("run", *ONLY_SPLIT, cwd=workdir)
    assert result.returncode == 0, result.stderr


# -- 2. paths escaping their folder ------------------------------------------------------------------
def _symlink_outside(root: Path) -> None:
    first = pd.read_csv(root / "train.csv", dtype=str)["id"].iloc[0]
    outside = root.parent / "outside.png"
    (root / "train" / f"{first}.png").rename(outside)
    (root / "train" / f"{first}.png").symlink_to(outside)


def _png_and_jpg(root: Path) -> None:
    first = pd.read_csv(root / "train.csv", dtype=str)["id"].iloc[0]
    (root / "train" / f"{first}.jpg").write_bytes((root / "train" / f"{first}.png").read_bytes())


def _folder_named_like_an_image(root: Path) -> None:
    first = pd.read_csv(root / "train.csv", dtype=str)["id"].iloc[0]
    (root / "train" / f"{first}.png").unlink()
    (root / "train" / f"{first}.png").mkdir()


PATH_CASES = {
    "symlink leaving the folder": (_symlink_outside, "is a link to", "outside the competition folder"),
    "png and jpg for one id": (_png_and_jpg, "has 2 images", "keep one of them"),
    "a folder named like an image": (_folder_named_like_an_image, "cannot read it as an image file",
                                     "data.on_bad_image=skip"),
}


@pytest.mark.parametrize("case", list(PATH_CASES))
def test_paths_that_escape_or_confuse_are_refused(case, demo, tmp_path, comp, monkeypatch):
    edit, *messages = PATH_CASES[case]
    root = copy_competition(demo, tmp_path / "c")
    edit(root)
    monkeypatch.chdir(tmp_path)
    code, _, err = comp("run", "stage=all", f"competition={root}")
    line = _one_line(err)
    assert code == 2 and all(m in line for m in messages), line
    assert not (tmp_path / "runs").exists() and not (tmp_path / "submissions").exists()


@pytest.mark.parametrize("run", ["../../x", "/abs", "..", "a/b"])
def test_run_names_cannot_leave_runs(run, comp, workdir):
    code, _, err = comp("run", *ONLY_SPLIT, f"run={run}")
    assert code == 2 and "expected a plain folder name" in _one_line(err)
    assert not any(workdir.iterdir()) and not Path("/abs").exists()


# -- 3. values checked before any work ---------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ("train.epochs=0", "train.epochs in override 'train.epochs=0': 0 is out of range; use a number >= 1"),
    ("train.epochs=-5", "-5 is out of range"),
    ("train.batch_size=0", "train.batch_size"),
    ("predict.batch_size=0", "predict.batch_size"),
    ("train.patience=-1", "train.patience"),
    ("split.seed=-1", "split.seed"),
    ("split.folds=1", "split.folds"),
    ("model.hp.filters=abc", "model.hp.filters='abc': model plugin 'small_cnn' takes a whole number in 16..128"),
    ("model.hp.dropout=2", "model.hp.dropout=2: model plugin 'small_cnn' takes a number in 0..0.6"),
    ("data.image_size=[0,0]", "data.image_size"),
    ("data.image_size=abc", "expected [height, width]"),
    ("budget=0s", "expected a duration above zero"),
    ("train.lr=-1", "train.lr"),
    ("train.ema=1.5", "train.ema"),
])
def test_bad_values_stop_before_any_work(override, message, comp, workdir):
    code, _, err = comp("run", "stage=all", override)
    assert code == 2 and message in _one_line(err)
    assert not any(workdir.iterdir())


@pytest.mark.parametrize("yaml_text, message", [
    ("42\n", "expected a mapping of keys"),
    ("- task\n- metric\n", "expected a mapping of keys"),
    ("target_columns: {a: 1}\n", "target_columns={'a': 1} is not a column name or a list of column names"),
    ("id_column: ident\n", "missing id column 'ident'"),
    ("max_len: -2\n", "max_len=-2 is not a positive whole number"),
])
def test_comp_yaml_of_the_wrong_shape(yaml_text, message, demo, tmp_path, comp, monkeypatch):
    root = copy_competition(demo, tmp_path / "c")
    (root / "comp.yaml").write_text(yaml_text)
    monkeypatch.chdir(tmp_path)
    code, _, err = comp("run", "stage=all", f"competition={root}")
    assert code == 2 and message in _one_line(err)
    assert not (tmp_path / "runs").exists()


def test_a_target_column_missing_from_the_sample_is_one_line(demo, tmp_path, comp, monkeypatch):
    root = copy_competition(demo, tmp_path / "c")
    (root / "comp.yaml").write_text("target_columns: [label]\n")
    sample = (root / "sample_submission.csv").read_text().splitlines()
    (root / "sample_submission.csv").write_text("\n".join(["id,prediction", *sample[1:]]) + "\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = comp("run", "stage=all", f"competition={root}")
    assert code == 2 and "sample_submission.csv: has no target column label and its column(s) prediction are not " \
                         "classes of it" in _one_line(err)
    assert not (tmp_path / "runs").exists()


# -- 4. provenance belongs to what was published --------------------------------------------------------
def test_a_failed_rerun_changes_nothing_of_a_finished_run(comp, workdir, monkeypatch):
    assert comp("run", *ONLY_SPLIT)[0] == 0
    before = _snapshot(workdir / "runs/digits")
    assert "split/config.yaml" in before and "config.yaml" in before
    code, _, err = comp("run", *ONLY_SPLIT, "overwrite=true", "task=regresion")  # a typo
    assert code == 2 and "task='regresion' is not a known task kind" in _one_line(err)
    from comp.stages import split

    def broken(ctx):
        raise OSError(28, "No space left on device", str(ctx.work / "folds.csv"))

    monkeypatch.setattr(split, "run", broken)
    code, _, err = comp("run", *ONLY_SPLIT, "overwrite=true", "split.seed=7")
    assert code == 2 and "cannot write" in _one_line(err) and "No space left on device" in err
    after = _snapshot(workdir / "runs/digits")
    assert {k: v for k, v in after.items() if ".partial" not in k} == before


@pytest.mark.slow  # ~33 s; its resume after a write error is also run by test_resume: `pytest -m slow` (CI's 20 minutes)
def test_a_file_size_limit_met_while_saving_resume_state_is_one_line_and_resumes(workdir):
    """A real write error (the file size limit, as a full disk meets it mid-write): one line
    naming the file and what to do, exit 2, finished stages untouched, no temporary file
    left, and the same command then finishes."""
    import resource

    assert comp_subprocess("run", "stage=split", *SMOKE, cwd=workdir).returncode == 0
    before = _snapshot(workdir / "runs/digits")
    exe = Path(sys.executable).with_name("comp")
    limit = 8 * 1024  # the fold's resume state is larger: its first save fails

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    failed = subprocess.run([str(exe), "run", "stage=baseline", *SMOKE], cwd=workdir, capture_output=True,
                            text=True, preexec_fn=small_files, timeout=600)
    line = _one_line(failed.stderr)
    assert failed.returncode == 2, failed.stderr
    assert line.startswith("error: cannot write runs/digits/baseline.partial/fold_0/resume/state-0001.npz: "
                           "File too large; raise the file size limit (ulimit -f)"), line
    assert not list((workdir / "runs").rglob("*.tmp"))
    after = _snapshot(workdir / "runs/digits")
    assert {k: v for k, v in after.items() if k in before} == before
    again = comp_subprocess("run", "stage=baseline", *SMOKE, cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "OOF accuracy" in again.stdout


# -- 5. damaged state -------------------------------------------------------------------------------------
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.slow  # ~42 s; damaged caches and resume state (below) stay in CI's 20 minutes
def test_damaged_files_are_detected_and_rebuilt_or_named(comp, workdir):
    assert comp("run", "stage=predict", *SMOKE)[0] == 0
    # A truncated stage record: that stage runs again.
    _truncate(workdir / "runs/digits/split/stage.json")
    code, out, err = comp("run", "stage=split", *SMOKE)
    assert code == 0, err
    assert "split/stage.json is damaged (not valid JSON): stage split will run again" in out
    json.loads((workdir / "runs/digits/split/stage.json").read_text())
    # A truncated fold model of a finished stage: the next stage that reads it names it.
    assert comp("run", "stage=predict", *SMOKE, "run=m")[0] == 0
    _truncate(workdir / "runs/m/baseline/fold_1/model.keras")
    code, _, err = comp("run", "stage=predict", *SMOKE, "run=m", "overwrite=true")
    line = _one_line(err)
    assert code == 2 and "baseline/fold_1/model.keras is damaged" in line and "stage=baseline overwrite=true" in line


def test_damaged_caches_and_resume_state_are_rebuilt(comp, workdir, tmp_path, monkeypatch):
    from comp.demo import cache_root, demo_competition

    # The decoded-image cache: a truncated entry is decoded again.
    monkeypatch.setenv("COMP_CACHE", str(tmp_path / "cache"))
    demo_competition(cache_root())
    assert comp("run", *ONLY_SPLIT)[0] == 0
    (entry,) = [p for p in (tmp_path / "cache/images").iterdir() if p.is_dir() and not p.is_symlink()]
    _truncate(entry / "pixels.npy")
    code, out, err = comp("run", *ONLY_SPLIT, "run=again")
    assert code == 0, err
    assert "is damaged; decoding the images again" in out
    # The demo with a file missing: built again.
    next((tmp_path / "cache/demo/v2/digits/train").glob("*.png")).unlink()
    code, out, err = comp("run", *ONLY_SPLIT, "run=third")
    assert code == 0 and "is incomplete or damaged; building it again" in out
    # A fold's resume state truncated after a kill: the fold starts again.
    folder = workdir / "runs/digits/baseline.partial/fold_0/resume"
    from comp.training import cv

    calls = {"n": 0}
    real = cv._train_keras_fold

    def killed_after_fold_0(*args, **kwargs):  # the first fold trains, then the "kill"
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cv, "_train_keras_fold", killed_after_fold_0)
    assert comp("run", "stage=baseline", *SMOKE)[0] == 130
    (workdir / "runs/digits/baseline.partial/fold_0/done.json").unlink()  # as if killed before the fold ended
    state = next(folder.glob("state-*.npz"))
    _truncate(state)
    monkeypatch.setattr(cv, "_train_keras_fold", real)
    code, out, err = comp("run", "stage=baseline", *SMOKE)
    assert code == 0, err
    assert "runs/digits/baseline.partial/fold_0/resume is damaged" in out and "the fold starts again" in out


# -- 6. hostile images -------------------------------------------------------------------------------------
def _png_header_only(path: Path, width: int, height: int) -> None:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(  # noqa: E731
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def _png_bomb(path: Path, side: int) -> None:
    """A real, valid grey PNG of side x side zeros, compressed small."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(  # noqa: E731
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    packer, row, body = zlib.compressobj(9), b"\0" * (side + 1), []
    for _ in range(side):
        body.append(packer.compress(row))
    body.append(packer.flush())
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(body))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("make, side", [(_png_header_only, 100000), (_png_bomb, 10000)])
def test_oversized_images_are_refused_before_decoding(make, side, demo, tmp_path, comp, monkeypatch):
    root = copy_competition(demo, tmp_path / "c")
    test_id = pd.read_csv(root / "sample_submission.csv", dtype=str)["id"].iloc[3]
    make(root / "test" / f"{test_id}.png", side, side) if make is _png_header_only else make(
        root / "test" / f"{test_id}.png", side)
    monkeypatch.chdir(tmp_path)
    code, _, err = comp("run", "stage=all", f"competition={root}")
    line = _one_line(err)
    assert code == 2 and f"{test_id}.png: {side}x{side} pixels, over data.max_pixels=64000000" in line
    assert not (tmp_path / "runs").exists()  # a test image: found before any training
    if make is _png_header_only:
        return  # skipping it trains a whole run: once, for the bomb, is enough
    code, out, err = comp("run", "stage=predict", *SMOKE, f"competition={root}", "data.on_bad_image=skip")
    assert code == 0, err
    assert f"1 undecodable test image(s) predicted from a blank image: {test_id}" in out


# -- 7. environment faults --------------------------------------------------------------------------------
def test_an_unwritable_home_falls_back_with_a_notice(tmp_path, workdir):
    blocker = tmp_path / "a-file"
    blocker.write_text("HOME below a file: nothing can be created there, not even by root")
    env = {k: v for k, v in os.environ.items() if k != "COMP_CACHE"}
    env.update(HOME=str(blocker / "home"), TMPDIR=str(tmp_path))
    exe = str(Path(sys.executable).with_name("comp"))
    helped = subprocess.run([exe, "--help"], cwd=workdir, capture_output=True, text=True, env=env)
    assert helped.returncode == 0 and "comp run stage=all" in helped.stdout
    assert "cannot be written; caching in" in helped.stderr
    listed = subprocess.run([exe, "plugins"], cwd=workdir, capture_output=True, text=True, env=env)
    assert listed.returncode == 0 and "small_cnn" in listed.stdout


def test_runs_or_submissions_as_a_file_are_found_first(comp, workdir):
    (workdir / "runs").write_text("not a folder")
    code, _, err = comp("run", "stage=all")
    line = _one_line(err)
    assert code == 2 and "runs is a file, not a folder" in line and "paths.runs" in line
    (workdir / "runs").unlink()
    (workdir / "submissions").write_text("not a folder")
    code, _, err = comp("run", "stage=all")
    assert code == 2 and "submissions is a file, not a folder" in _one_line(err)
    assert not (workdir / "runs").exists()


def test_ragged_rows_and_swapped_sample_columns_are_named(demo, tmp_path, comp, monkeypatch):
    root = copy_competition(demo, tmp_path / "c")
    lines = (root / "train.csv").read_text().splitlines()
    lines[4] += ",extra"
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = comp("run", "stage=all", f"competition={root}")
    assert code == 2 and "train.csv line 5: 3 fields where the header has 2" in _one_line(err)
    root = copy_competition(demo, tmp_path / "d")
    sample = pd.read_csv(root / "sample_submission.csv", dtype=str)
    sample[["label", "id"]].to_csv(root / "sample_submission.csv", index=False)
    code, _, err = comp("run", "stage=all", f"competition={root}")
    line = _one_line(err)
    assert code == 2 and "sample_submission.csv: its first column is 'label'" in line and "id_column" in line
    assert not (tmp_path / "runs").exists()


def test_a_repeated_column_name_is_blamed_on_its_own_file(demo, tmp_path, comp, monkeypatch):
    root = copy_competition(demo, tmp_path / "c")
    sample = (root / "sample_submission.csv").read_text().splitlines()
    (root / "sample_submission.csv").write_text("\n".join(["id,label,label", *(f"{r},0" for r in sample[1:])]) + "\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = comp("run", "stage=all", f"competition={root}")
    # it said "train.csv: missing column 'label.1'" (pandas renames a repeated name)
    assert code == 2 and "sample_submission.csv: column 'label' appears 2 times in the header; give each column " \
                         "its own name" in _one_line(err)
    assert not (tmp_path / "runs").exists()


# -- 7. a failing part costs only itself ---------------------------------------------------------------------
@pytest.mark.slow  # ~48 s; a search stage and a fold that raise stay in the default run: `pytest -m slow` (CI's 20 minutes)
def test_a_variant_a_candidate_or_a_view_that_raises_is_left_out_and_the_run_submits(comp, workdir, monkeypatch):
    """Three parts raise in one run (each would cost a whole run alone): baseline.variants=[mlp]
    whose plugin raises on a fold, the SWA candidates (their BatchNorm recalibration raises) and a
    view (a plugin's). Each is left out with its one-line reason and traceback: the variant's
    folder removed, the baseline's own model published; the view said once and left out of every
    candidate's views; the other candidates scored with the views that work and blended. The run
    exits 0 with a submission and one warning line."""
    from comp import augmentation
    from comp.training import averaging, cv

    def broken(*args, **kwargs):
        raise RuntimeError("recalibration blew up")

    class Broken:
        name = "broken_view"

        def __call__(self, batch):
            raise RuntimeError("the view plugin's bug")

    real_fold = cv._train_keras_fold

    def mlp_fails(*args, **kwargs):
        if args[5].name == "mlp":
            raise RuntimeError("the mlp plugin's bug")
        return real_fold(*args, **kwargs)

    monkeypatch.setattr(cv, "_train_keras_fold", mlp_fails)
    monkeypatch.setattr(averaging, "recalibrate_batchnorm", broken)
    real = augmentation.probe_views
    monkeypatch.setattr(augmentation, "probe_views", lambda *a, **k: [*real(*a, **k), Broken()])
    code, out, err = comp("run", "stage=all", *SMOKE, "train.swa_epochs=2", "train.snapshots=2", "predict.tta=auto",
                          "baseline.variants=[mlp]", "ensemble.candidates=[fold,snapshots,swa,variants]")
    assert code == 0, err
    assert ("[baseline] variant mlp failed: RuntimeError: the mlp plugin's bug (left out; traceback in "
            "baseline/failures.log)") in out
    assert "the mlp plugin's bug" in (workdir / "runs/digits/baseline/failures.log").read_text()
    record = json.loads((workdir / "runs/digits/baseline/stage.json").read_text())
    assert "variants" not in record and record["failures"][0]["what"] == "variant mlp"
    assert not (workdir / "runs/digits/baseline/variants/mlp").exists()
    assert "candidate baseline:swa on fold 1 failed: RuntimeError: recalibration blew up (left out; traceback in " \
           "ensemble/failures.log)" in out
    assert out.count("failed: RuntimeError: the view plugin's bug") == 1
    assert "[ensemble] test-time view broken_view failed: RuntimeError: the view plugin's bug (left out; " in out
    log = (workdir / "runs/digits/ensemble/failures.log").read_text()
    assert "recalibration blew up" in log and "the view plugin's bug" in log
    table = pd.read_csv(workdir / "runs/digits/ensemble/candidates.csv")
    assert not table["candidate"].str.contains("swa|mlp").any()
    assert {"baseline", "baseline:snapshots"} <= set(table["candidate"])
    warning = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and warning[0].startswith("warning: 3 part(s) of the run failed and were left out ("), \
        warning
    for part in ("baseline: variant mlp: RuntimeError: the mlp plugin's bug",
                 "ensemble: candidate baseline:swa on fold 1: RuntimeError: recalibration blew up",
                 "ensemble: test-time view broken_view: RuntimeError: the view plugin's bug"):
        assert part in warning[0], warning
    assert warning[0].endswith("; tracebacks in each stage's failures.log")
    assert list((workdir / "submissions").glob("digits-*-accuracy=*.csv"))


def test_a_search_stage_that_raises_costs_itself_and_strict_says_so(comp, workdir, monkeypatch):
    """regularize raising an internal error: it is not published, tune (which reads it) does
    not run, the ensemble blends what was published and the run submits. With strict=true the
    same run exits 4 after publishing its submission."""
    from comp.stages import regularize

    def broken(ctx):
        raise ValueError("a bug in regularize")

    monkeypatch.setattr(regularize, "run", broken)
    code, out, err = comp("run", "stage=all", *SMOKE)
    assert code == 0, err
    assert "[regularize] stage regularize failed: ValueError: a bug in regularize (left out; traceback in " \
           "regularize.partial/failures.log)" in out
    assert "[tune] not run: it reads stage regularize, which failed" in out
    assert not (workdir / "runs/digits/regularize").exists() and not (workdir / "runs/digits/tune").exists()
    assert "a bug in regularize" in (workdir / "runs/digits/regularize.partial/failures.log").read_text()
    assert list((workdir / "submissions").glob("digits-*-accuracy=*.csv"))
    assert "warning: 1 part(s) of the run failed" in out

    # The same command with strict=true: regularize fails again, the rest is unchanged.
    code, out, err = comp("run", "stage=all", *SMOKE, "strict=true")
    assert code == 4
    assert _one_line(err).startswith("error: 1 part(s) of the run failed and were left out (stage regularize: "
                                     "ValueError: a bug in regularize)")
    assert _one_line(err).endswith("(strict=true)")
    assert "[ensemble] unchanged since" in out and list((workdir / "submissions").glob("digits-*-accuracy=*.csv"))

    # Asked for by name, the stage is what the command is for: its failure is not contained.
    code, out, err = comp("run", "stage=regularize", *SMOKE, "run=asked")
    assert code == 1 and "ValueError: a bug in regularize" in err


@pytest.mark.slow  # ~33 s; a model failing on one fold stays in the default run (CI's 20 minutes)
def test_a_model_that_fails_on_one_of_three_folds_costs_that_fold_not_the_run(comp, workdir, demo, monkeypatch):
    """The main model raising on fold 2 of 3 (a plugin's bug on that fold's rows): the run goes
    on with folds 1 and 3, renumbered 1-2, the failed fold's rows learnt from and never
    scored; every stage after the baseline works on those two folds, the submission is
    written, the run exits 0 with a warning line (4 with strict=true)."""
    from comp.training import cv

    real = cv._train_keras_fold

    def fails_on_fold_2(*args, **kwargs):
        if kwargs["title"] == "baseline fold 2/3":
            raise RuntimeError("the plugin's bug on this fold's rows")
        return real(*args, **kwargs)

    monkeypatch.setattr(cv, "_train_keras_fold", fails_on_fold_2)
    code, out, err = comp("run", "stage=all", *SMOKE, "split.folds=3")
    assert code == 0, err
    assert "[baseline] fold 2/3 failed: RuntimeError: the plugin's bug on this fold's rows (left out" in out
    assert "[baseline] the run goes on without fold(s) 2 of 3" in out
    assert ("warning: 1 part(s) of the run failed and were left out (baseline: model small_cnn on fold 2/3: "
            "RuntimeError: the plugin's bug on this fold's rows)") in out
    run = workdir / "runs/digits"
    baseline = json.loads((run / "baseline/stage.json").read_text())
    assert baseline["failed_folds"] == [1] and baseline["folds"] == 2 and len(baseline["fold_scores"]) == 2
    assert sorted(p.name for p in (run / "baseline").glob("fold_*")) == ["fold_0", "fold_1"]
    assert "the plugin's bug" in (run / "baseline/failures.log").read_text()
    folds = pd.read_csv(run / "split/folds.csv", dtype={"id": str}).set_index("id")["fold"]
    oof = pd.read_csv(run / "baseline/oof.csv", dtype={"id": str}).set_index("id")
    left_out = folds.index[folds == 1]
    assert (oof.loc[left_out, "fold"] == cv.UNSCORED).all()
    assert (oof.loc[folds.index[folds == 2], "fold"] == 1).all()  # fold 3 is the run's fold 2 now
    ensemble = json.loads((run / "ensemble/stage.json").read_text())
    assert ensemble["failed_folds"] == [1] and ensemble["folds"] == 2
    assert all(len(m["models"]) == 2 for m in ensemble["members"])
    assert list((workdir / "submissions").glob("digits-*-accuracy=*.csv"))
    # The report ranks the OOF errors of the scored rows only (the failed fold's have no prediction).
    from comp.competition import load_competition
    from comp.report import RunView

    assert (RunView(run, load_competition(demo), None).fold_of() == oof["fold"].to_numpy()).all()
    code, _, err = comp("report", "run=digits")
    assert code == 0, err

    code, out, err = comp("run", "stage=all", *SMOKE, "split.folds=3", "strict=true")
    assert code == 4 and "[baseline] unchanged since" in out
    assert _one_line(err).startswith("error: 1 part(s) of the run failed and were left out (baseline: model "
                                     "small_cnn on fold 2/3: RuntimeError")


def test_taking_a_failed_fold_out_resumes_after_a_kill_part_way(tmp_path):
    """The fold folders renumbered after a failed fold (folds 2 and 4 of 5 failed): a kill
    part-way, then the same step again, leaves each finished fold's model where its new
    number says, and the fold table renumbered the same way."""
    import shutil

    import numpy as np

    from comp.stages.training import take_out_folds
    from comp.training.cv import UNSCORED

    fold_of = np.repeat(np.arange(5), 2)
    for k in range(5):
        (tmp_path / f"fold_{k}").mkdir()
        (tmp_path / f"fold_{k}/model.txt").write_text(str(k))
        if k not in (1, 3):
            (tmp_path / f"fold_{k}/done.json").write_text("{}")
    # a kill after the failed folders were removed and fold 3's model moved down to fold_1
    for k in (1, 3):
        shutil.rmtree(tmp_path / f"fold_{k}")
    (tmp_path / "fold_2").rename(tmp_path / "fold_1")
    renumbered = take_out_folds(tmp_path, fold_of, [1, 3])
    assert {p.name: (p / "model.txt").read_text() for p in tmp_path.iterdir()} == {
        "fold_0": "0", "fold_1": "2", "fold_2": "4"}
    assert renumbered.tolist() == [0, 0, UNSCORED, UNSCORED, 1, 1, UNSCORED, UNSCORED, 2, 2]
    assert take_out_folds(tmp_path, fold_of, [1, 3]).tolist() == renumbered.tolist()  # again: nothing moves
    assert {p.name: (p / "model.txt").read_text() for p in tmp_path.iterdir()} == {
        "fold_0": "0", "fold_1": "2", "fold_2": "4"}


def test_a_forward_fold_taken_out_is_learnt_from_by_the_later_folds_only():
    """In a split forward in time, the rows of a failed fold 2 of 3 stay out of fold 1's
    training (they are later) and are learnt from by fold 3 (now fold 2), as before."""
    import numpy as np

    from comp.training.cv import HISTORY, fit_rows, without_folds

    fold_of = np.array([HISTORY, HISTORY, 0, 0, 1, 1, 2, 2])
    out = without_folds(fold_of, [1])
    assert fit_rows(out, 0).tolist() == [0, 1] and fit_rows(out, 1).tolist() == [0, 1, 2, 3, 4, 5]
    assert np.flatnonzero(out == 0).tolist() == [2, 3] and np.flatnonzero(out == 1).tolist() == [6, 7]
    # k-fold: every fold learns from the failed fold's rows
    kfold = without_folds(np.array([0, 0, 1, 1, 2, 2]), [1])
    assert fit_rows(kfold, 0).tolist() == [2, 3, 4, 5] and fit_rows(kfold, 1).tolist() == [0, 1, 2, 3]


def test_a_model_that_fails_on_one_fold_is_one_line_and_keeps_the_folds_before_it(comp, workdir, monkeypatch):
    """The main model raising on fold 2 of 2 (a plugin's bug): one fold is no cross-validation,
    so one line naming the model, the fold and its reason, exit 2, the traceback in
    failures.log, fold 1 kept; the same command then resumes at fold 2."""
    from comp.training import cv

    real = cv._train_keras_fold
    calls = {"n": 0}

    def fails_on_fold_2(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the plugin's bug on this fold's rows")
        return real(*args, **kwargs)

    monkeypatch.setattr(cv, "_train_keras_fold", fails_on_fold_2)
    code, out, err = comp("run", "stage=baseline", *SMOKE)
    line = _one_line(err)
    assert code == 2
    assert line.startswith("error: model small_cnn failed on fold 2/2: RuntimeError: the plugin's bug on this fold's "
                           "rows (traceback in runs/digits/baseline.partial/failures.log); the folds before it are "
                           "kept: fix the model plugin or choose another model="), line
    assert "the plugin's bug" in (workdir / "runs/digits/baseline.partial/failures.log").read_text()
    assert (workdir / "runs/digits/baseline.partial/fold_0/done.json").is_file()
    monkeypatch.setattr(cv, "_train_keras_fold", real)
    code, out, err = comp("run", "stage=baseline", *SMOKE)
    assert code == 0, err
    assert "fold 1/2: finished earlier" in out
