"""README command 1 as a user runs it: the full default demo. Slow: `pytest -m slow`."""
import time

import pytest

from comp.demo import cache_root, solution_path
from tests.conftest import comp_subprocess, read_submission


@pytest.mark.slow
def test_default_demo_reaches_095_within_5_minutes(workdir, demo):
    began = time.monotonic()
    result = comp_subprocess("run", "stage=all", cwd=workdir)
    elapsed = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    (path,) = (workdir / "submissions").glob("digits-baseline-accuracy=*.csv")
    oof_accuracy = float(path.stem.split("=")[1])
    assert oof_accuracy >= 0.95
    solution = read_submission(solution_path(cache_root()))
    assert (read_submission(path)["label"] == solution["label"]).mean() >= 0.95
    assert elapsed < 300
