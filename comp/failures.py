"""What a part of a run that failed leaves behind: its one-line reason, its traceback in the
stage's failures.log; and which OS errors are a full disk or a permission (the user's to fix,
never a part's failure)."""
from __future__ import annotations

import errno
import traceback
from pathlib import Path

FAILURES_LOG = "failures.log"

# What to do about each error a write can meet (the file size limit is `ulimit -f`).
WRITE_ERRORS = {errno.ENOSPC: "free space", errno.EDQUOT: "free space or raise your disk quota",
                errno.EFBIG: "raise the file size limit (ulimit -f) or free space",
                errno.EROFS: "fix permissions", errno.EACCES: "fix permissions", errno.EPERM: "fix permissions"}


def is_write_error(exc: BaseException) -> bool:
    """A full disk, a file size limit or a permission: the run stops with its one line."""
    return isinstance(exc, OSError) and exc.errno in WRITE_ERRORS


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``; an exception's own ``reason`` where it has one."""
    if getattr(exc, "reason", ""):
        return exc.reason
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines and lines[0] == "in user code:":
        # raised inside a traced function: TensorFlow puts the stack first and the error last
        last = lines[-1]
        return last[:200] if last.startswith(type(exc).__name__ + ":") else f"{type(exc).__name__}: {last[:200]}"
    return f"{type(exc).__name__}: {(lines or [''])[0][:200]}"


def record(folder: Path, what: str, exc: BaseException) -> Path:
    """Append ``what``'s traceback to ``folder``'s FAILURES_LOG; returns the log's path."""
    log = Path(folder) / FAILURES_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"--- {what} ---\n{''.join(traceback.format_exception(exc))}\n")
    return log


def is_part_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a part's own failure, which may cost that part alone (a model that
    raised, on a fold or anywhere): not the user's error (a bad input or config), the end
    of the time, or a full disk, each of which stops the run with its one line."""
    from comp.errors import CompError, FoldFailed
    from comp.training.trainer import OutOfTime

    if isinstance(exc, FoldFailed):
        return True
    return not isinstance(exc, (CompError, OutOfTime, KeyboardInterrupt, SystemExit)) and not is_write_error(exc)
