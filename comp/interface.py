"""``comp.run``: the pipeline from Python (a notebook, a script), and the layer the CLI's
``comp run`` is over.

    import comp
    result = comp.run(competition="path/to/folder", budget="15m", **{"train.epochs": 30})
    result.submission, result.score, result.score_se, result.stages

Keyword arguments are the CLI's ``key=value`` words (dotted keys through ``**{...}``), with
the same validation: a bad input raises ``comp.errors.CompError`` (a ``ConfigError`` or
``DataError``) whose message is the CLI's one line, before anything is written. A run whose
failed parts were left out returns normally (``result.failures`` lists them) unless
``strict=True``, which raises ``comp.errors.PartsFailed`` after the submission is published.
Progress is printed as on a terminal, so a notebook shows it in the cell's output.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

STAGE_COLUMNS = ["stage", "score", "metric", "score_se", "seconds", "finished", "failures"]


@dataclass(frozen=True)
class RunResult:
    """What a run published: its submission, the honest OOF score, and where everything is."""

    run_dir: Path
    record: dict[str, Any]  # the last stage's record, as in runs/<run>/<stage>/stage.json
    stages: pd.DataFrame  # a row per published stage of the run directory
    report: Path | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def submission(self) -> Path | None:
        """The submission CSV (stage submit's), or None when the run stopped before it."""
        path = self.record.get("submission")
        return Path(path) if path else None

    @property
    def score(self) -> float | None:
        """The last stage's honest OOF score (the submission's, after stage submit)."""
        return self.record.get("score")

    @property
    def score_se(self) -> float | None:
        return self.record.get("score_se")

    @property
    def metric(self) -> str | None:
        return self.record.get("metric")


def run(competition: str | Path | None = None, stage: str = "all", budget: str | None = None,
        run: str | None = None, **overrides: Any) -> RunResult:
    """Run ``stage`` (and the stale stages before it) on ``competition`` (a folder, a ``.zip``,
    ``demo:NAME``, or None for the digits demo) within ``budget`` (``"90s"``, ``"15m"``);
    ``overrides`` are config keys, e.g. ``seed=1`` or ``**{"train.epochs": 30}``."""
    from comp.clock import now

    started = now()
    words = [f"stage={stage}"]
    for key, value in (("competition", competition), ("budget", budget), ("run", run)):
        if value is not None:
            words.append(f"{key}={value}")
    words += [f"{key}={_word(value)}" for key, value in overrides.items()]
    return run_words(words, started=started)


def run_words(words: list[str], argv: list[str] | None = None, wait: bool = False,
              started: float | None = None) -> RunResult:
    """Run the command ``comp run WORDS`` stands for; what ``comp run`` and ``run`` share."""
    import warnings

    from comp.config import load_config
    from comp.pipeline import run as run_pipeline

    # Keras warns that fit's shuffle=True is ignored for tf.data; ours are shuffled already.
    warnings.filterwarnings("ignore", message=".*shuffle=True. was passed")
    cfg = load_config(words)  # all validation happens before any work
    outcome = run_pipeline(cfg, argv if argv is not None else ["run", *words], wait, started)
    return _result(outcome)


def _result(outcome: dict[str, Any]) -> RunResult:
    from comp.rundir import RunDir
    from comp.stages import STAGES

    record, run_dir = outcome.get("record", {}), outcome.get("run_dir")
    if run_dir is None:  # a keras-tuner worker: the chief publishes every result
        return RunResult(Path("."), record, pd.DataFrame(columns=STAGE_COLUMNS))
    rundir = RunDir(Path(run_dir))
    rows = []
    for name in STAGES:
        published = rundir.record(name)
        if published:
            rows.append({"stage": name, "score": published.get("score"), "metric": published.get("metric"),
                         "score_se": published.get("score_se"), "seconds": published.get("seconds"),
                         "finished": published.get("finished"), "failures": len(published.get("failures", []))})
    report = outcome.get("report")
    return RunResult(rundir.path, record, pd.DataFrame(rows, columns=STAGE_COLUMNS),
                     Path(report) if report else None, list(outcome.get("failures", [])))


def _word(value: Any) -> str:
    """A Python value as the CLI would spell it after ``key=``."""
    import yaml

    if isinstance(value, (list, tuple, dict)):
        return yaml.safe_dump(list(value) if isinstance(value, tuple) else value, default_flow_style=True,
                              width=10_000).strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)
