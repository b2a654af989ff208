"""Shared fixtures: the real demo competition and real configs, shrunk (experiment=smoke)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

# One demo build per test worker, outside the user's ~/.cache.
os.environ.setdefault("COMP_CACHE", tempfile.mkdtemp(prefix="comp-test-cache-"))

REPO = Path(__file__).resolve().parents[1]
SMOKE = ("experiment=smoke",)
# The textbook recipe (Adam at a constant LR, no BatchNorm, no augmentation), shrunk: for
# tests about one mechanism whose numbers the default recipe's parts would blur.
TEXTBOOK = ("experiment=textbook", "experiment=smoke")
# TrainSpec fields for tests of the training library's mechanics: Adam at a constant LR,
# no label smoothing, nothing kept for the ensemble (TrainSpec's own defaults are the recipe's:
# AdamW, cosine, ...).
PLAIN_TRAINING = dict(optimizer="adam", weight_decay=0.0, schedule="constant", warmup=0.0, snapshots=0,
                      swa_epochs=0, keep_ema=0.0, label_smoothing=0.0)


@pytest.fixture(scope="session")
def demo() -> Path:
    from comp.demo import cache_root, demo_competition

    return demo_competition(cache_root())


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty working directory: runs/ and submissions/ land here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def comp(capsys):
    """Run `comp ...` in-process; returns (exit code, stdout, stderr)."""
    from comp.cli import main

    def call(*args: str):
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return call


def comp_subprocess(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed `comp` console script as a user would."""
    exe = Path(sys.executable).with_name("comp")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def copy_competition(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def read_submission(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)
