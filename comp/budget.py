"""The wall-clock budget of one command: what each stage may spend, on one clock (``comp.clock``).

Each stage declares its share in its module (``TIME``, a ``Share``); the pipeline asks
``Budget.box(stage, share)`` when the stage starts and hands it the resulting
``comp.clock.TimeBox``. Without a budget every box is unlimited.

- The training stages share the training time, by weight (``Share(training=w)``): each
  gets ``w / sum(w of the training stages still to run)`` of the training time left when it
  starts, so what a stage leaves unused goes to the next ones (docs/recipe.md 10: the
  baseline needs enough epochs to be a fair reference, the searches get the rest).
- The run plan (``comp.planner``) may fund a training stage with seconds of its own
  (``fund``): the main model's schedule comes first, the others share what is left.
- The training time ends before the budget by what prediction, the submission and the
  report need: the run plan's forecast of them (``reserve``), at least 15 s and at most 10%
  of the budget; 10% (at least 15 s) without a plan.
- ``Share(leftover=True)``: a training stage that takes only what the others leave (stage
  bag): no weight among them, all the training time left when it starts.
- ``Share(of_budget=f)``: ``f`` of the whole budget, at most what is left (the checks).
- ``Share(of_remaining=f)``: ``f`` of what is left of the budget when the stage starts;
  with ``after_training`` at least until the training time's end (the ensemble: what the
  run plan kept for it, or what the training stages left).
- No share: until the budget's end.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from comp import clock
from comp.clock import TimeBox

RESERVE_SHARE, RESERVE_SECONDS = 0.1, 15.0  # kept after training: 10% of the budget, at least 15 s


@dataclass(frozen=True)
class Share:
    """What part of the budget a stage may spend (see the module docstring)."""

    training: float = 0.0  # weight among the training stages
    of_budget: float = 0.0
    of_remaining: float = 0.0
    after_training: bool = False  # with of_remaining: at least until the training time's end (what it left)
    leftover: bool = False  # a training stage with the training time the others leave


class Budget:
    """``seconds=None`` means unlimited. Times are ``comp.clock.now()`` values; tests replace
    that clock to exercise budget logic without depending on the machine's speed."""

    def __init__(self, seconds: float | None, start: float | None = None):
        self.seconds = seconds
        self.start = clock.now() if start is None else start  # when the command began (cli: the process start)
        self.pending: dict[str, float] = {}  # training stages still to run, in order -> weight
        self.leftover: list[str] = []  # training stages still to run that take what the others leave
        self.boxes: dict[str, TimeBox] = {}  # fixed when a stage starts
        self.funded: dict[str, float] = {}  # training stages given seconds by the run plan (comp.planner)
        self.kept = 0.0  # seconds the run plan keeps after the training stages (for the ensemble)
        self.reserved: float | None = None  # kept at the end for prediction and the report (None: the default)

    @property
    def limited(self) -> bool:
        return self.seconds is not None

    def remaining(self) -> float:
        if self.seconds is None:
            return math.inf
        return self.start + self.seconds - clock.now()

    def elapsed(self) -> float:
        return clock.now() - self.start

    def training_end(self) -> float:
        """When training must stop so that prediction and submission still fit."""
        if self.seconds is None:
            return math.inf
        reserve = self.reserve_bounds()[1] if self.reserved is None else self.reserved
        return self.start + max(self.seconds - reserve, 0.0)

    def reserve_bounds(self) -> tuple[float, float]:
        """(the least, the most) kept at the budget's end for prediction, the submission and
        the report; the most is what is kept without a forecast."""
        return RESERVE_SECONDS, max(RESERVE_SECONDS, RESERVE_SHARE * (self.seconds or 0.0))

    def reserve(self, seconds: float) -> None:
        """Keep ``seconds`` (the run plan's forecast, within ``reserve_bounds``) at the end
        instead of the default: the difference goes to training."""
        least, most = self.reserve_bounds()
        self.reserved = min(max(seconds, least), most)

    def reserve_more(self, seconds: float) -> None:
        """Keep ``seconds`` more at the end (past ``reserve_bounds``): a training stage that
        adds to what prediction will do (stage bag's models) moves the training's end."""
        if self.limited:
            least, most = self.reserve_bounds()
            self.reserved = (most if self.reserved is None else self.reserved) + max(seconds, 0.0)

    def plan(self, shares: dict[str, Share | None]) -> str:
        """Plan the training stages' shares (``shares``: the stages to run, in order); the
        line to print."""
        self.pending = {name: s.training for name, s in shares.items() if s is not None and s.training}
        self.leftover = [name for name, s in shares.items() if s is not None and s.leftover]
        if not self.limited or not self.pending:
            return ""
        total = sum(self.pending.values())
        training = max(self.training_end() - clock.now(), 0.0)
        parts = ", ".join(f"{s} {w / total:.0%} (~{training * w / total:.0f}s)" for s, w in self.pending.items())
        after = f"; {' and '.join(self.leftover)} what they leave" if self.leftover else ""
        return (f"budget plan: {self.seconds:.0f}s; {self.seconds - (self.training_end() - self.start):.0f}s "
                f"kept for prediction and submission, the training stages share the rest: {parts}{after} (a stage "
                "that finishes early or is unchanged leaves its time to the next)")

    def fund(self, stage: str, seconds: float) -> None:
        """The run plan gives ``stage`` ``seconds`` (at most what training has left when it
        starts); the other training stages share what is left after it by weight."""
        self.funded[stage] = max(seconds, 0.0)

    def keep(self, seconds: float) -> None:
        """The training stages end ``seconds`` before the training time does: the run plan's
        time for what follows them (a stage with ``Share(after_training=True)``)."""
        self.kept = max(seconds, 0.0)

    def planned(self, stage: str) -> bool:
        """Whether ``stage`` is a training stage of this budget's plan, still to run."""
        return self.limited and (stage in self.pending or stage in self.leftover)

    def box(self, stage: str, share: Share | None) -> TimeBox:
        """The time ``stage`` may spend, from now (later calls give the same box)."""
        if stage not in self.boxes:
            self.boxes[stage] = self._box(stage, share)
        return self.boxes[stage]

    def _box(self, stage: str, share: Share | None) -> TimeBox:
        now = clock.now()
        if not self.limited:
            return TimeBox(math.inf, now)
        end = self.start + self.seconds
        if share is None:
            return TimeBox(end, now)
        if share.leftover:
            return TimeBox(now + max(self.training_end() - self.kept - now, 0.0), now)
        if share.training:
            training = max(self.training_end() - self.kept - now, 0.0)
            if stage in self.funded:
                return TimeBox(now + min(self.funded[stage], training), now)
            pending = {s: w for s, w in self.pending.items() if s not in self.funded} \
                if stage in self.pending else {stage: share.training}
            fraction = share.training / sum(pending.values())
            # the funded stages still to run keep their time
            kept = sum(self.funded[s] for s in self.pending if s in self.funded)
            return TimeBox(now + max(training - kept, 0.0) * fraction, now)
        if share.of_budget:
            return TimeBox(now + min(share.of_budget * self.seconds, max(end - now, 0.0)), now)
        until = now + share.of_remaining * max(end - now, 0.0)
        if share.after_training:
            # A planned reserve is a forecast of what follows (prediction): not shared with this stage.
            last = end if self.reserved is None else self.training_end()
            until = min(max(until, self.training_end()), last)
        return TimeBox(max(until, now), now)

    def finished(self, stage: str) -> None:
        """``stage`` ran or was skipped: its weight leaves the plan."""
        self.pending.pop(stage, None)
        if stage in self.leftover:
            self.leftover.remove(stage)
