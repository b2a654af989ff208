"""comp.run: the pipeline from Python, as README's example uses it."""
import re
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).parents[1] / "README.md"


def _python_example() -> str:
    text = README.read_text()
    section = text[text.index("### From Python (a notebook)"):]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


def test_the_readme_example_runs_and_returns_what_the_run_published(workdir, capsys):
    names: dict = {}
    exec(compile(_python_example(), "README.md", "exec"), names)  # noqa: S102 - the documented example, as a user runs it
    result = names["result"]
    out = capsys.readouterr().out
    assert result.submission.is_file() and result.submission.parent.name == "submissions"
    assert re.search(rf"^OOF accuracy = {result.score:.5f} \({result.record['source']}\)$", out, re.M)  # as printed
    assert result.metric == "accuracy" and 0.8 < result.score <= 1.0 and result.score_se > 0
    assert result.stages["stage"].tolist()[-3:] == ["ensemble", "predict", "submit"]
    assert result.run_dir == Path("runs/wine") and result.report == Path("runs/wine/report.html")
    assert result.report.is_file() and result.failures == []
    from comp.demo import cache_root, demo_competition

    submitted = pd.read_csv(result.submission, dtype=str)
    sample = pd.read_csv(demo_competition(cache_root(), "wine") / "sample_submission.csv", dtype=str)
    assert submitted.columns.tolist() == sample.columns.tolist() and submitted["id"].equals(sample["id"])


def test_a_bad_key_raises_the_clis_one_line_error_before_anything_is_written(workdir):
    import comp
    from comp.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^unknown config key 'train.epoch'"):
        comp.run(competition="demo:wine", **{"train.epoch": 3})
    assert not (workdir / "runs").exists() and not (workdir / "submissions").exists()


def test_python_values_are_spelled_as_the_cli_reads_them():
    from comp.interface import _word

    assert [_word(v) for v in ([1, 2], ("a",), {"x": 1}, True, None, 3e-3)] == \
        ["[1, 2]", "[a]", "{x: 1}", "true", "null", "0.003"]
