"""Reading competition folders: inference, comp.yaml, and one-line errors for bad input."""
from pathlib import Path

import pandas as pd
import pytest

from comp.competition import load_competition
from tests.conftest import SMOKE, copy_competition


def test_demo_inference(demo):
    c = load_competition(demo)
    assert (c.id_col, c.target_cols, c.task_kind) == ("id", ["label"], "classification")
    assert len(c.train) == 1437 and len(c.test_ids) == 360
    assert c.train["id"].iloc[0].startswith("0")  # ids stay strings with leading zeros
    assert any("first column of sample_submission.csv" in n for n in c.notes)


def test_comp_yaml_and_overrides(demo, tmp_path):
    root = copy_competition(demo, tmp_path / "c")
    (root / "comp.yaml").write_text("metric: logloss\nid_column: id\ntarget_columns: [label]\n")
    c = load_competition(root)
    assert c.metric == "logloss" and c.notes == ["task classification (from the target values: 10 distinct whole numbers; set task in "
                                                "comp.yaml to change)"]
    assert load_competition(root, metric="accuracy").metric == "accuracy"


def _rewrite(name, change):
    def edit(root):
        frame = pd.read_csv(root / name, dtype=str)
        change(frame).to_csv(root / name, index=False)
    return edit


def _set(frame, row, col, value):
    frame.loc[row, col] = value
    return frame


def _unlink_first_image(root):
    first = pd.read_csv(root / "train.csv", dtype=str)["id"].iloc[0]
    (root / "train" / f"{first}.png").unlink()


def _one_rare_class(frame):
    frame.loc[frame.index[:2], "label"] = "rare"
    return frame


def _sample_not_in_test_csv(root):
    ids = pd.read_csv(root / "sample_submission.csv", dtype=str)["id"]
    pd.DataFrame({"id": ids.iloc[1:]}).to_csv(root / "test.csv", index=False)


BAD_INPUTS = {
    "missing train.csv": (lambda r: (r / "train.csv").unlink(), "train.csv is missing"),
    "missing sample_submission.csv": (lambda r: (r / "sample_submission.csv").unlink(),
                                      "sample_submission.csv is missing"),
    "empty csv": (lambda r: (r / "train.csv").write_text(""), "train.csv is empty"),
    "header only": (lambda r: (r / "train.csv").write_text("id,label\n"), "train.csv has a header but no rows"),
    "missing target column": (_rewrite("train.csv", lambda f: f.drop(columns="label")),
                              "train.csv: missing column 'label'"),
    "extra submission column": (_rewrite("sample_submission.csv", lambda f: f.assign(extra="0")),
                                "train.csv: missing column 'extra'"),
    "duplicate id": (_rewrite("train.csv", lambda f: _set(f, 5, "id", f.loc[4, "id"])),
                     "train.csv row 7: duplicate id"),
    "missing image": (_unlink_first_image, "train.csv row 2: no image for id"),
    "id leaving the folder": (_rewrite("train.csv", lambda f: _set(f, 0, "id", "../x")),
                              "train.csv row 2: id '../x' is not a plain file name"),
    "absolute id": (_rewrite("train.csv", lambda f: _set(f, 0, "id", "/etc/passwd")),
                    "train.csv row 2: id '/etc/passwd' is not a plain file name"),
    "non-UTF-8 csv": (lambda r: (r / "train.csv").write_bytes("id,label\n00001,caf\xe9\n".encode("latin-1")),
                      "not UTF-8"),
    "sample id absent from test.csv": (_sample_not_in_test_csv, "is not in test.csv"),
    "label format the task cannot produce": (
        _rewrite("sample_submission.csv", lambda f: _set(f, 2, "label", "1 7")),
        "sample_submission.csv row 4: label='1 7' looks like a label list, which task classification cannot produce"),
    "single class": (_rewrite("train.csv", lambda f: f.assign(label="3")), "has a single class ('3')"),
    "fewer examples than folds": (_rewrite("train.csv", _one_rare_class),
                                  "class 'rare' has 2 example(s), fewer than split.folds=5"),
    "unknown comp.yaml key": (lambda r: (r / "comp.yaml").write_text("target: label\n"),
                              "comp.yaml: unknown key 'target'"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_one_line_and_writes_nothing(case, demo, tmp_path, comp, monkeypatch):
    edit, message = BAD_INPUTS[case]
    root = copy_competition(demo, tmp_path / "c")
    edit(root)
    monkeypatch.chdir(tmp_path)
    code, out, err = comp("run", "stage=all", f"competition={root}")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert not (tmp_path / "runs").exists() and not (tmp_path / "submissions").exists()


def _as_class_folders(demo: Path, root: Path, id_col: str = "file") -> Path:
    """The digits demo as image competitions often ship: train/<class>/<file>.png and no
    train.csv, test/<file>.png flat, sample_submission's ids the test files' names."""
    import shutil

    train = pd.read_csv(demo / "train.csv", dtype=str)
    for image_id, label in zip(train["id"], train["label"]):
        (root / "train" / f"digit_{label}").mkdir(parents=True, exist_ok=True)
        shutil.copy(demo / "train" / f"{image_id}.png", root / "train" / f"digit_{label}" / f"{image_id}.png")
    shutil.copytree(demo / "test", root / "test")
    sample = pd.read_csv(demo / "sample_submission.csv", dtype=str)
    pd.DataFrame({id_col: sample["id"] + ".png", "digit": "digit_0"}).to_csv(root / "sample_submission.csv",
                                                                            index=False)
    return root


@pytest.mark.slow  # ~27 s: `pytest -m slow` (CI's 20 minutes)
def test_class_folders_without_train_csv_train_and_submit_by_file_name_also_as_submission_csv(demo, workdir, comp):
    root = _as_class_folders(demo, workdir / "folders")
    c = load_competition(root)
    assert (c.id_col, c.target_cols, c.task_kind, len(c.train)) == ("file", ["digit"], "classification", 1437)
    assert c.train["file"].iloc[0] == "digit_0/" + c.train_images[0].name and c.train["digit"].nunique() == 10
    assert [p.name for p in c.test_images[:2]] == list(c.sample["file"][:2])  # ids with their extension
    assert any(n.startswith("class folders: 1437 train images in 10 classes") for n in c.notes)
    code, out, err = comp("run", "stage=all", *SMOKE, f"competition={root}", "run=folders",
                          "submit.copy_to=submission.csv")  # where a Kaggle code competition reads it
    assert code == 0, err[-2000:]
    (path,) = (workdir / "submissions").glob("folders-*.csv")
    assert (workdir / "submission.csv").read_bytes() == path.read_bytes()
    submitted = pd.read_csv(path, dtype=str)
    assert submitted["file"].tolist() == c.sample["file"].tolist()
    from comp.demo import cache_root, solution_path

    truth = pd.read_csv(solution_path(cache_root()), dtype=str)
    assert (submitted["digit"].str.removeprefix("digit_") == truth["label"]).mean() > 0.8  # learnt, not guessed


def test_a_submission_copy_named_as_a_folder_is_refused_before_any_work(demo, workdir, comp):
    (workdir / "out").mkdir()
    code, out, err = comp("run", "stage=all", f"competition={demo}", "submit.copy_to=out")
    assert code == 2
    assert err.strip() == "error: submit.copy_to='out' is a folder; name the file, e.g. submit.copy_to=out/submission.csv"
    assert not (workdir / "runs").exists() and not (workdir / "submissions").exists()


def _zip(folder: Path, archive: Path, inner: str | None = None) -> Path:
    """``folder`` zipped as Kaggle's "Download all" gives it: its files under one top folder,
    and ``inner`` (a subfolder) as a zip of its own inside."""
    import zipfile

    with zipfile.ZipFile(archive, "w") as zf:
        if inner:
            nested = archive.parent / f"{inner}.zip"
            with zipfile.ZipFile(nested, "w") as nz:
                for path in sorted((folder / inner).rglob("*")):
                    nz.write(path, path.relative_to(folder).as_posix())
            zf.write(nested, f"{archive.stem}/{inner}.zip")
            nested.unlink()
        for path in sorted(folder.rglob("*")):
            if not (inner and path.relative_to(folder).parts[0] == inner):
                zf.write(path, f"{archive.stem}/{path.relative_to(folder).as_posix()}")
    return archive


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.slow  # ~33 s: `pytest -m slow` (CI's 20 minutes)
def test_a_zipped_competition_is_unpacked_once_into_the_cache_and_read_there(demo, workdir, comp, monkeypatch):
    monkeypatch.setenv("COMP_CACHE", str(workdir / "cache"))
    archive = _zip(demo, workdir / "digits-download.zip", inner="train")
    before = archive.stat().st_mtime_ns
    code, out, err = comp("run", "stage=split", f"competition={archive}")
    assert code == 0, err[-2000:]
    import re

    unpacked = Path(re.search(r"^competition digits-download \((.+)\) -> run runs/digits-download$", out, re.M)[1])
    assert unpacked.is_relative_to((workdir / "cache" / "unpacked").resolve())
    assert (unpacked / "train").is_dir() and not (unpacked / "train.zip").exists()  # the inner zip unpacked too
    snapshot = _snapshot(unpacked)
    code, out, err = comp("run", "stage=all", *SMOKE, f"competition={archive}")
    assert code == 0, err[-2000:]
    assert _snapshot(unpacked) == snapshot and archive.stat().st_mtime_ns == before  # unpacked once, nothing written
    assert len(list((workdir / "submissions").glob("digits-download-*.csv"))) == 1


def test_a_zip_member_leaving_its_folder_is_refused_with_nothing_written(workdir, comp, monkeypatch):
    import zipfile

    monkeypatch.setenv("COMP_CACHE", str(workdir / "cache"))
    with zipfile.ZipFile(workdir / "bad.zip", "w") as zf:
        zf.writestr("bad/sample_submission.csv", "id,label\n1,0\n")
        zf.writestr("../escape.txt", "x")
    code, out, err = comp("run", "stage=all", f"competition={workdir / 'bad.zip'}")
    assert code == 2
    assert err.strip() == (f"error: {workdir / 'bad.zip'}: member '../escape.txt' would be written outside the "
                           "folder it is unpacked to; this archive is not a competition download")
    assert not (workdir / "escape.txt").exists() and not (workdir / "runs").exists()
    assert not any((workdir / "cache" / "unpacked").rglob("*.txt"))


@pytest.mark.slow  # ~30 s: `pytest -m slow` (CI's 20 minutes)
def test_nothing_is_written_inside_the_competition_folder(demo, workdir, comp):
    root = copy_competition(demo, workdir / "readonly")
    before = _snapshot(root)
    code, out, err = comp("run", "stage=all", *SMOKE, f"competition={root}", "report=true")
    assert code == 0, err[-2000:]
    assert _snapshot(root) == before


def test_images_nested_below_train_and_test_are_found_by_their_id(demo, tmp_path):
    """Downloads often wrap the images once more (train/train/<id>.png, test/images/<id>.png)."""
    import shutil

    root = copy_competition(demo, tmp_path / "nested")
    for split, inner in (("train", "train"), ("test", "images")):
        shutil.move(str(root / split), str(tmp_path / inner))
        (root / split).mkdir()
        shutil.move(str(tmp_path / inner), str(root / split / inner))
    c = load_competition(root)
    assert len(c.train_images) == 1437 and c.train_images[0].parent.name == "train"
    assert [p.stem for p in c.test_images[:3]] == list(c.test_ids[:3]) and c.test_images[0].parent.name == "images"
    (root / "train" / "copy").mkdir()
    shutil.copy(c.train_images[0], root / "train" / "copy" / c.train_images[0].name)
    with pytest.raises(Exception, match=rf"id '{c.train['id'][0]}' has 2 images \(copy/.*\.png, train/.*\.png\)"):
        load_competition(root)


def test_two_class_folders_and_a_sample_column_named_after_one_hold_its_probability(demo, tmp_path):
    root = _as_class_folders(demo, tmp_path / "binary")
    for folder in (root / "train").iterdir():
        if folder.name not in ("digit_0", "digit_1"):
            import shutil

            shutil.rmtree(folder)
    pd.DataFrame({"file": pd.read_csv(root / "sample_submission.csv", dtype=str)["file"], "digit_1": "0.5"}).to_csv(
        root / "sample_submission.csv", index=False)
    from comp.tasks import make_task

    c = load_competition(root)
    task = make_task(c.task_kind, c.task_source(), c.metric, c.root, [])
    assert task.classes[-1] == "digit_1" and "P(digit_1='digit_1')" in task.submission_format()


def test_a_submission_copy_into_a_folder_that_cannot_be_made_is_refused_before_any_work(demo, workdir, comp):
    (workdir / "afile").write_text("x")
    code, out, err = comp("run", "stage=all", f"competition={demo}", "submit.copy_to=afile/submission.csv")
    assert code == 2
    assert err.strip() == (f"error: submit.copy_to='afile/submission.csv': {workdir / 'afile'} is not a folder "
                           "this user can write to; name a file in a writable folder")
    assert not (workdir / "runs").exists()


def test_an_inner_zip_is_unpacked_into_its_own_folder_unless_it_wraps_one(tmp_path):
    import zipfile

    from comp.data.archive import unpack

    with zipfile.ZipFile(tmp_path / "test.zip", "w") as zf:  # files at its top
        zf.writestr("a.png", "x")
    with zipfile.ZipFile(tmp_path / "train_images.zip", "w") as zf:  # one folder inside
        zf.writestr("train/b.png", "x")
    with zipfile.ZipFile(tmp_path / "download.zip", "w") as zf:
        zf.write(tmp_path / "test.zip", "test.zip")
        zf.write(tmp_path / "train_images.zip", "train_images.zip")
        zf.writestr("sample_submission.csv", "id,y\n")
    root = unpack(tmp_path / "download.zip", tmp_path / "cache")
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.*")) == [
        "sample_submission.csv", "test/a.png", "train/b.png"]
