"""What a stage receives: the config, the competition, its task and its work folder."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comp.budget import Budget
from comp.clock import UNLIMITED, TimeBox
from comp.competition import Competition
from comp.config import Config
from comp.failures import FAILURES_LOG, one_line, record
from comp.rundir import RunDir


@dataclass
class StageContext:
    name: str
    cfg: Config
    competition: Competition
    task: Any
    rundir: RunDir
    work: Path  # the stage writes here; published as runs/<run>/<name>/ on success
    budget: Budget  # the command's
    upstream: dict[str, str]  # stage name -> its published folder name, for this stage's inputs
    submissions: Path = Path("submissions")  # where `submit` writes (a worker's scratch folder on non-chief workers)
    run_name: str = ""  # the run's name, as in runs/<run>/ and submission file names
    time: TimeBox = UNLIMITED  # what this stage may spend: its share of the budget (the stage's TIME)
    failures: list[dict] = field(default_factory=list)  # parts that raised and were left out (``failed``)
    failed_folds: list[int] = field(default_factory=list)  # the split's folds the run goes on without (``read_folds``)

    def log(self, message: str) -> None:
        print(f"[{self.name}] {message}", flush=True)

    def failed(self, what: str, exc: BaseException, published: bool = True) -> str:
        """Record that ``what`` (a trial, a candidate, a view) raised and was left out: one
        line here, its traceback in the stage's FAILURES_LOG (named where the stage will be
        published, or where it stays when it will not be). Returns the one-line reason."""
        reason = one_line(exc)
        record(self.work, what, exc)
        self.failures.append({"what": what, "reason": reason})
        folder = self.name if published else self.work.name
        self.log(f"{what} failed: {reason} (left out; traceback in {folder}/{FAILURES_LOG})")
        return reason

