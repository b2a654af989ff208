"""The command-line contract: help, exit codes, one-line errors, nothing written on error."""
from tests.conftest import comp_subprocess


def test_help_explains_stages_and_keys(comp, capsys):
    import pytest

    with pytest.raises(SystemExit) as done:
        from comp.cli import main
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    for word in ("split", "baseline", "predict", "submit", "train.epochs", "split.folds", "budget"):
        assert word in out


def test_unknown_key_exits_2_with_one_line(workdir):
    result = comp_subprocess("run", "stage=all", "train.epoch=3", cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown config key 'train.epoch' in override 'train.epoch=3': did you mean 'train.epochs'?"
    ]
    assert not (workdir / "runs").exists() and not (workdir / "submissions").exists()


def test_unknown_stage_names_closest(comp, workdir):
    code, _, err = comp("run", "stage=baselin")
    assert code == 2 and "did you mean 'baseline'?" in err


def test_missing_competition_folder(comp, workdir):
    code, _, err = comp("run", f"competition={workdir / 'nowhere'}")
    assert code == 2 and "does not exist" in err
    assert not (workdir / "runs").exists()
