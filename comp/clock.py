"""The one clock a run plans with (monotonic seconds), and a time box on it."""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace


def now() -> float:
    """Monotonic seconds: every deadline, budget and measured duration in comp is on this clock.
    Looked up at each call, so a test may replace ``time.monotonic`` or this function."""
    return time.monotonic()


def _process_start() -> float:
    """When this process started, on the ``now()`` clock: a budget is for the whole command,
    and importing TensorFlow alone takes seconds before any of comp's code runs. Read from
    the kernel's record of the process (Linux); elsewhere, when this module was imported."""
    try:
        with open(f"/proc/{os.getpid()}/stat") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        # at most 10 minutes back: a long-lived process that imports comp late (a notebook) is
        # not charged for its past
        return time.monotonic() - min(max(age, 0.0), 600.0)
    except (OSError, ValueError, IndexError, AttributeError):
        return time.monotonic()


PROCESS_START = _process_start()


def process_start() -> float:
    """When the command began (``now()`` clock): where a run's budget starts counting."""
    return PROCESS_START


@dataclass(frozen=True)
class TimeBox:
    """A span of the clock to work in: from ``start`` until ``end`` (inf: no limit). With
    ``hard`` the end also stops work part-way (a search's trial must not outlive its search);
    otherwise it is a plan to fit (a schedule planned to end decayed inside it)."""

    end: float = math.inf
    start: float = field(default_factory=lambda: now())
    hard: bool = False

    @classmethod
    def of(cls, seconds: float, hard: bool = False) -> "TimeBox":
        """A box of ``seconds`` from now (inf: unlimited)."""
        start = now()
        return cls(start + seconds, start, hard)

    @property
    def limited(self) -> bool:
        return math.isfinite(self.end)

    @property
    def seconds(self) -> float:
        """How long the box was when made."""
        return self.end - self.start

    @property
    def hard_end(self) -> float:
        """When work must stop part-way: ``end`` for a hard box, else never."""
        return self.end if self.hard else math.inf

    def remaining(self) -> float:
        """Seconds left (negative once past the end; inf without a limit)."""
        return self.end - now()

    def spent(self) -> float:
        return now() - self.start

    def share(self, fraction: float) -> "TimeBox":
        """A box of ``fraction`` of what is left, from now."""
        t = now()
        return replace(self, start=t, end=t + fraction * max(self.end - t, 0.0)) if self.limited else \
            replace(self, start=t)

    def split(self, parts: int) -> "TimeBox":
        """The next of ``parts`` equal shares of what is left (what an earlier one leaves goes on)."""
        return self.share(1.0 / max(parts, 1))

    def within(self, seconds: float) -> "TimeBox":
        """This box, ending at most ``seconds`` from now."""
        t = now()
        return replace(self, start=t, end=min(self.end, t + seconds))

    def hardened(self) -> "TimeBox":
        return replace(self, hard=True)


UNLIMITED = TimeBox(math.inf, 0.0)
