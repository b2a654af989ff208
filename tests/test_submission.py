"""Submission validation and the never-overwrite rule."""
import pandas as pd
import pytest

from comp.errors import DataError
from comp.submission import build_submission, validate_submission, write_submission

SAMPLE = pd.DataFrame({"id": ["b", "a", "c"], "label": ["0", "0", "0"]})


def test_keeps_sample_order_and_columns():
    frame = build_submission(SAMPLE, "id", "label", ["07", "10", "3"])
    validate_submission(frame, SAMPLE, "id", {"label": {"07", "10", "3"}})
    assert frame.to_dict("list") == {"id": ["b", "a", "c"], "label": ["07", "10", "3"]}


def test_rejects_reordered_ids_and_unknown_labels():
    frame = build_submission(SAMPLE, "id", "label", ["1", "1", "1"])
    with pytest.raises(DataError, match="ids differ"):
        validate_submission(frame.iloc[[1, 0, 2]].reset_index(drop=True), SAMPLE, "id", {"label": {"1"}})
    with pytest.raises(DataError, match=r"row 2: label='1' is not a label seen in train.csv"):
        validate_submission(frame, SAMPLE, "id", {"label": {"0"}})


def test_never_overwrites(tmp_path):
    first = build_submission(SAMPLE, "id", "label", ["1", "2", "3"])
    second = build_submission(SAMPLE, "id", "label", ["3", "2", "1"])
    path1, new1 = write_submission(first, tmp_path, "run-baseline-accuracy=0.5")
    path1b, new1b = write_submission(first, tmp_path, "run-baseline-accuracy=0.5")
    path2, new2 = write_submission(second, tmp_path, "run-baseline-accuracy=0.5")
    assert (new1, new1b, new2) == (True, False, True)
    assert path1 == path1b and path2.name == "run-baseline-accuracy=0.5-2.csv"
    assert path1.read_text() == "id,label\nb,1\na,2\nc,3\n"
    assert {p.name for p in tmp_path.iterdir()} == {path1.name, path2.name}  # no temp files left
