"""Wall-clock budget for one command: stages and epochs shrink to fit it."""
from __future__ import annotations

import math
import time


# How the training stages share the training time of a budget (docs/recipe.md 10): the
# baseline needs enough epochs to be a fair reference, the searches get the rest. Shares are
# of the time left when a stage starts, so what a stage leaves unused goes to the next ones.
STAGE_WEIGHTS = {"baseline": 0.4, "regularize": 0.25, "tune": 0.35}


class Budget:
    """``seconds=None`` means unlimited. Times are ``clock()`` values (monotonic seconds);
    tests replace ``clock`` to exercise budget logic without depending on the machine's speed."""

    clock = staticmethod(time.monotonic)

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.start = self.clock()
        self.pending: list[str] = []  # training stages still to run, in order
        self.deadlines: dict[str, float] = {}  # fixed when a stage starts

    def plan(self, stages: list[str]) -> str:
        """Plan the training stages' shares; the line to print."""
        self.pending = [s for s in stages if s in STAGE_WEIGHTS]
        if not self.limited or not self.pending:
            return ""
        total = sum(STAGE_WEIGHTS[s] for s in self.pending)
        training = max(self.training_deadline() - self.clock(), 0.0)
        parts = ", ".join(f"{s} {STAGE_WEIGHTS[s] / total:.0%} (~{training * STAGE_WEIGHTS[s] / total:.0f}s)"
                          for s in self.pending)
        return (f"budget plan: {self.seconds:.0f}s; {self.seconds - (self.training_deadline() - self.start):.0f}s "
                f"kept for prediction and submission, the training stages share the rest: {parts} (a stage that "
                "finishes early or is unchanged leaves its time to the next)")

    def stage_deadline(self, stage: str) -> float:
        """When ``stage`` must finish: its weight's share of the training time left when it
        first asks (later calls give the same time)."""
        if not self.limited:
            return math.inf
        if stage not in self.deadlines:
            pending = self.pending if stage in self.pending else [stage]
            share = STAGE_WEIGHTS.get(stage, 1.0) / sum(STAGE_WEIGHTS.get(s, 1.0) for s in pending)
            now = self.clock()
            self.deadlines[stage] = now + max(self.training_deadline() - now, 0.0) * share
        return self.deadlines[stage]

    def finished(self, stage: str) -> None:
        """``stage`` ran or was skipped: its weight leaves the plan."""
        if stage in self.pending:
            self.pending.remove(stage)

    @property
    def limited(self) -> bool:
        return self.seconds is not None

    def remaining(self) -> float:
        if self.seconds is None:
            return math.inf
        return self.start + self.seconds - self.clock()

    def training_deadline(self) -> float:
        """When training must stop so that prediction and submission still fit.

        Keeps 10% of the budget (at least 15 s) for the stages after training.
        """
        if self.seconds is None:
            return math.inf
        reserve = max(15.0, 0.1 * self.seconds)
        return self.start + max(self.seconds - reserve, 0.0)
