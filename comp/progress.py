"""A live one-line progress display on a terminal or in a notebook; silent in CI or when
the output is neither (a file, a pipe)."""
from __future__ import annotations

import os
import shutil
import sys
from typing import Callable, TextIO

from comp import clock
from comp.budget import Budget


def _duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """Rewrites one status line with '\\r'; ``enabled`` defaults to a TTY or a Jupyter kernel
    (whose cell output honours '\\r') outside CI."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None):
        self.stream = stream or sys.stderr
        if enabled is None:
            in_ci = os.environ.get("CI", "").lower() in ("true", "1", "yes")
            terminal = hasattr(self.stream, "isatty") and self.stream.isatty()
            enabled = not in_ci and (terminal or "ipykernel" in sys.modules)
        self.enabled = enabled
        self._width = 0

    def epoch_hook(self, stage: str, fold: int, folds: int, epochs: int, budget: Budget,
                   metric: str) -> Callable[[int, dict], None]:
        """A loop hook showing stage, fold k/K, epoch, loss, the validation metric and the budget's ETA."""
        began = clock.now()

        def hook(epoch: int, logs: dict) -> None:
            if not self.enabled:
                return
            per_epoch = (clock.now() - began) / (epoch + 1)
            if budget.limited:
                eta = f"budget left {_duration(budget.remaining())}"
            else:
                eta = f"fold ends within {_duration(per_epoch * (epochs - epoch - 1))}"
            self.show(f"[{stage}] fold {fold + 1}/{folds} epoch {epoch + 1}/{epochs} "
                      f"loss {logs['loss']:.4f} val {metric} {logs['val_score']:.4f} | {eta}")

        return hook

    def show(self, text: str) -> None:
        width = shutil.get_terminal_size((100, 20)).columns - 1
        text = text[:width]
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        """Erase the status line before a normal log line is printed."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def resident_mb() -> float:
    """This process's resident memory in MB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
