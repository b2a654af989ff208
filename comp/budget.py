"""Wall-clock budget for one command: stages and epochs shrink to fit it."""
from __future__ import annotations

import math
import time


class Budget:
    """``seconds=None`` means unlimited. Times are ``clock()`` values (monotonic seconds);
    tests replace ``clock`` to exercise budget logic without depending on the machine's speed."""

    clock = staticmethod(time.monotonic)

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.start = self.clock()

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
