"""Submission validation and the never-overwrite rule."""
import pandas as pd
import pytest

from comp.errors import DataError
from comp.submission import validate_submission, write_submission
from comp.tasks import make_task

SAMPLE = pd.DataFrame({"id": ["b", "a", "c"], "label": ["0", "0", "0"]})


def _task():
    train = pd.DataFrame({"id": ["x", "y", "z", "w"], "label": ["07", "10", "3", "07"]})
    from comp.tasks.base import TaskSource

    return make_task("classification", TaskSource(train[["label"]], SAMPLE, "id", ("label",)))


def test_keeps_sample_order_and_columns():
    frame = SAMPLE.assign(label=["07", "10", "3"])
    validate_submission(frame, SAMPLE, "id", _task())
    assert frame.to_dict("list") == {"id": ["b", "a", "c"], "label": ["07", "10", "3"]}


def test_rejects_reordered_ids_unknown_labels_and_empty_cells():
    frame = SAMPLE.assign(label=["3", "3", "3"])
    with pytest.raises(DataError, match="ids differ"):
        validate_submission(frame.iloc[[1, 0, 2]].reset_index(drop=True), SAMPLE, "id", _task())
    with pytest.raises(DataError, match=r"row 3: label='7' is not a label seen in train.csv"):
        validate_submission(frame.assign(label=["3", "7", "3"]), SAMPLE, "id", _task())
    with pytest.raises(DataError, match=r"row 4: an empty cell"):
        validate_submission(frame.assign(label=["3", "3", None]), SAMPLE, "id", _task())


def test_never_overwrites(tmp_path):
    first = SAMPLE.assign(label=["1", "2", "3"])
    second = SAMPLE.assign(label=["3", "2", "1"])
    path1, new1 = write_submission(first, tmp_path, "run-baseline-accuracy=0.5")
    path1b, new1b = write_submission(first, tmp_path, "run-baseline-accuracy=0.5")
    path2, new2 = write_submission(second, tmp_path, "run-baseline-accuracy=0.5")
    assert (new1, new1b, new2) == (True, False, True)
    assert path1 == path1b and path2.name == "run-baseline-accuracy=0.5-2.csv"
    assert path1.read_text() == "id,label\nb,1\na,2\nc,3\n"
    assert {p.name for p in tmp_path.iterdir()} == {path1.name, path2.name}  # no temp files left
