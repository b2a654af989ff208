"""The live progress line: shown on a terminal, silent in CI and in pipes."""
import io

from comp.budget import Budget
from comp.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_line_on_a_terminal(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # the line is cut to the terminal's width
    term = Terminal()
    progress = Progress(term)
    hook = progress.epoch_hook("baseline", fold=1, folds=5, epochs=60, budget=Budget(600), metric="accuracy")
    hook(0, {"loss": 0.5, "val_score": 0.9})
    hook(1, {"loss": 0.25, "val_score": 0.95})
    progress.clear()
    text = term.getvalue()
    assert "\r[baseline] fold 2/5 epoch 1/60 loss 0.5000 val accuracy 0.9000 | budget left 9m5" in text
    assert "epoch 2/60 loss 0.2500 val accuracy 0.9500" in text
    assert text.endswith("\r")  # cleared, ready for the next log line


def test_quiet_in_ci_and_in_pipes(monkeypatch):
    monkeypatch.setenv("CI", "true")
    term = Terminal()
    Progress(term).epoch_hook("baseline", 0, 2, 3, Budget(None), "rmse")(0, {"loss": 1.0, "val_score": 1.0})
    assert term.getvalue() == ""
    monkeypatch.delenv("CI")
    pipe = io.StringIO()  # not a TTY
    Progress(pipe).epoch_hook("baseline", 0, 2, 3, Budget(None), "rmse")(0, {"loss": 1.0, "val_score": 1.0})
    assert pipe.getvalue() == ""


def test_line_is_cut_to_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    term = Terminal()
    Progress(term).show("x" * 100)
    assert term.getvalue() == "\r" + "x" * 39


def test_shown_in_a_jupyter_notebook_whose_output_is_no_tty(monkeypatch):
    import sys

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setitem(sys.modules, "ipykernel", object())  # comp.run called from a notebook's kernel
    cell = io.StringIO()
    Progress(cell).epoch_hook("baseline", 0, 2, 3, Budget(None), "rmse")(0, {"loss": 1.0, "val_score": 1.0})
    assert cell.getvalue().startswith("\r[baseline] fold 1/2 epoch 1/3 loss 1.0000 val rmse 1.0000")
