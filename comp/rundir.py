"""The run directory ``runs/<run>/``: layout, atomic writes and per-stage records.

A stage writes into ``<stage>.partial/`` and the folder is renamed to ``<stage>/`` only
after its ``stage.json`` is written, so a later stage never reads half a result.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from comp.errors import CompError

STAGE_RECORD = "stage.json"


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


class RunDir:
    """One run's folder; stage outputs are reached only through ``output(stage)``."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def output(self, stage: str) -> Path:
        """Finished output folder of ``stage``; a clear error if that stage has not run."""
        out = self.path / stage
        if not (out / STAGE_RECORD).is_file():
            raise CompError(
                f"{out} is missing: run `comp run stage={stage}` first (or stage=all)"
            )
        return out

    def record(self, stage: str) -> dict[str, Any] | None:
        """The finished stage's ``stage.json``, or None when it has not finished."""
        path = self.path / stage / STAGE_RECORD
        return read_json(path) if path.is_file() else None

    def partial(self, stage: str, key: str) -> Path:
        """Work folder for ``stage``; kept across interruptions while ``key`` is unchanged."""
        work = self.path / f"{stage}.partial"
        marker = work / ".key"
        if work.exists() and (not marker.is_file() or marker.read_text() != key):
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        if not marker.is_file():
            write_text(marker, key)
        return work

    def publish(self, stage: str, record: dict[str, Any]) -> Path:
        """Write ``stage.json`` into the work folder and swap it in as the stage's output."""
        work = self.path / f"{stage}.partial"
        (work / ".key").unlink(missing_ok=True)
        write_json(work / STAGE_RECORD, record)
        final = self.path / stage
        trash = self.path / f".{stage}.old"
        if trash.exists():
            shutil.rmtree(trash)
        if final.exists():
            os.replace(final, trash)
        os.replace(work, final)
        shutil.rmtree(trash, ignore_errors=True)
        return final
