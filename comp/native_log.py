"""Send TensorFlow's native (C++) log lines to a file instead of the terminal.

TF 2.21 prints oneDNN/CUDA-probe lines through absl on file descriptor 2 whatever
TF_CPP_MIN_LOG_LEVEL says, which buries the one-line errors and scores users read.
Python's own stderr (our errors, warnings, tracebacks) keeps the real terminal.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


def redirect_native_stderr(path: Path) -> None:
    """Point fd 2 at ``path`` (appending); keep ``sys.stderr`` on the original stream."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    terminal = os.dup(2)
    sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding=sys.stderr.encoding,
                           errors="backslashreplace")
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)
