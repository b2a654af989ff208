"""What a stage receives: the config, the competition, its task and its work folder."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comp.budget import Budget
from comp.clock import UNLIMITED, TimeBox
from comp.competition import Competition
from comp.config import Config
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

    def log(self, message: str) -> None:
        print(f"[{self.name}] {message}", flush=True)
