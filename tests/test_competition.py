"""Reading competition folders: inference, comp.yaml, and one-line errors for bad input."""
import pandas as pd
import pytest

from comp.competition import load_competition
from comp.errors import DataError
from tests.conftest import copy_competition


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
    assert c.metric == "logloss" and c.notes == ["task classification (from the target values)"]
    assert load_competition(root, metric="accuracy").metric == "accuracy"


def _broken(demo, tmp_path, edit):
    root = copy_competition(demo, tmp_path / "c")
    edit(root)
    with pytest.raises(DataError) as err:
        load_competition(root)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_missing_train_csv(demo, tmp_path):
    msg = _broken(demo, tmp_path, lambda r: (r / "train.csv").unlink())
    assert "train.csv is missing" in msg


def test_missing_sample_submission(demo, tmp_path):
    msg = _broken(demo, tmp_path, lambda r: (r / "sample_submission.csv").unlink())
    assert "sample_submission.csv is missing" in msg


def test_empty_csv(demo, tmp_path):
    msg = _broken(demo, tmp_path, lambda r: (r / "train.csv").write_text(""))
    assert "train.csv is empty" in msg


def test_missing_target_column(demo, tmp_path):
    def edit(r):
        pd.read_csv(r / "train.csv", dtype=str).drop(columns="label").to_csv(r / "train.csv", index=False)
    assert "train.csv: missing column 'label'" in _broken(demo, tmp_path, edit)


def test_duplicate_id(demo, tmp_path):
    def edit(r):
        t = pd.read_csv(r / "train.csv", dtype=str)
        t.loc[5, "id"] = t.loc[4, "id"]
        t.to_csv(r / "train.csv", index=False)
    assert "train.csv row 7: duplicate id" in _broken(demo, tmp_path, edit)


def test_missing_image(demo, tmp_path):
    def edit(r):
        first = pd.read_csv(r / "train.csv", dtype=str)["id"].iloc[0]
        (r / "train" / f"{first}.png").unlink()
    assert "train.csv row 2: no image for id" in _broken(demo, tmp_path, edit)


@pytest.mark.parametrize("bad_id", ["../x", "/etc/passwd"])
def test_id_leaving_the_folder(demo, tmp_path, bad_id):
    def edit(r):
        t = pd.read_csv(r / "train.csv", dtype=str)
        t.loc[0, "id"] = bad_id
        t.to_csv(r / "train.csv", index=False)
    assert f"train.csv row 2: id {bad_id!r} is not a plain file name" in _broken(demo, tmp_path, edit)


def test_non_utf8_csv(demo, tmp_path):
    def edit(r):
        (r / "train.csv").write_bytes("id,label\n00001,caf\xe9\n".encode("latin-1"))
    assert "not UTF-8" in _broken(demo, tmp_path, edit)


def test_sample_id_absent_from_test_csv(demo, tmp_path):
    def edit(r):
        ids = pd.read_csv(r / "sample_submission.csv", dtype=str)["id"]
        pd.DataFrame({"id": ids.iloc[1:]}).to_csv(r / "test.csv", index=False)
    assert "is not in test.csv" in _broken(demo, tmp_path, edit)


def test_single_class_target(demo, tmp_path, comp, monkeypatch):
    root = copy_competition(demo, tmp_path / "c")
    t = pd.read_csv(root / "train.csv", dtype=str)
    t["label"] = "3"
    t.to_csv(root / "train.csv", index=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = comp("run", f"competition={root}")
    assert code == 2 and "has a single class ('3')" in err
    assert not (tmp_path / "runs").exists()
