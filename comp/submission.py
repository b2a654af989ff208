"""Build, validate and write a submission in exactly the competition's format."""
from __future__ import annotations

import filecmp
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from comp.errors import DataError


def validate_submission(frame: pd.DataFrame, sample: pd.DataFrame, id_col: str, task: Any) -> None:
    """Raise DataError unless ``frame`` has sample's columns and ids in order, no empty
    cell, and values the task could have meant (``task.check_submission_values``)."""
    if list(frame.columns) != list(sample.columns):
        raise DataError(f"submission columns {list(frame.columns)} differ from sample_submission.csv's {list(sample.columns)}")
    if len(frame) != len(sample) or not frame[id_col].equals(sample[id_col]):
        raise DataError("submission ids differ from sample_submission.csv's ids or their order")
    empty = frame.isna().any(axis=1)
    if empty.any():
        row = int(empty.to_numpy().nonzero()[0][0])
        raise DataError(f"submission row {row + 2}: an empty cell; every column needs a value")
    task.check_submission_values(frame)


def copy_submission(path: Path, target: str | Path) -> Path:
    """Copy the submission at ``path`` to ``target`` (relative to the working directory),
    replacing what is there in one step: a reader sees the old file or the new, never half."""
    target = Path(target).expanduser()
    if target.is_dir():
        raise DataError(f"submit.copy_to={str(target)!r} is a folder; name the file, e.g. {target / 'submission.csv'}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_submission(frame: pd.DataFrame, folder: Path, stem: str) -> tuple[Path, bool]:
    """Write ``<stem>.csv`` in ``folder``, never overwriting a different earlier file.

    Returns the path and whether a new file was written (False: an identical file existed).
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        frame.to_csv(tmp, index=False)
        for n in range(1, 1000):
            path = folder / (f"{stem}.csv" if n == 1 else f"{stem}-{n}.csv")
            if path.exists():
                if filecmp.cmp(tmp, path, shallow=False):
                    return path, False
                continue
            try:
                # A hard link appears complete or not at all, and fails rather than replace a
                # file that appeared meanwhile: no half-written or overwritten submission.
                os.link(tmp, path)
            except FileExistsError:
                continue
            return path, True
    finally:
        os.unlink(tmp)
    raise DataError(f"{folder}: 999 submissions named {stem}*.csv already; move some away")
