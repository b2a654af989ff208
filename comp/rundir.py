"""The run directory ``runs/<run>/``: layout, locking and per-stage records.

A stage writes into ``<stage>.partial/`` and the folder is renamed to ``<stage>/`` only
after its ``stage.json`` is written, so a later stage never reads half a result.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any


from comp.errors import CompError
from comp.files import file_sha256, read_json, write_json, write_text

STAGE_RECORD = "stage.json"


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder`` (paths relative to it), the stage record excepted."""
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != STAGE_RECORD}


class RunLock:
    """One command at a time on a run directory: an exclusive ``flock`` on ``<run>/.lock``.

    The kernel drops the lock when its holder dies, however it dies, so a crashed run never
    leaves it stuck; the file's content (pid, host, start time, command) is only for the
    message a second command gets. (``flock`` is local to one machine: runs sharing a
    network file system from several hosts need one host per run name.)
    """

    def __init__(self, path: Path, command: str):
        self.path, self.command = Path(path), command
        self._fd: int | None = None

    def acquire(self, wait: bool = False) -> None:
        import fcntl
        import socket

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace")
            os.close(fd)
            try:
                info = json.loads(holder)
                who = (f"pid {info['pid']} on {info['host']}, running since {info['started']}: "
                       f"{info['command']}")
            except (ValueError, KeyError):
                who = "another comp command"
            raise CompError(f"run {self.path.parent} is in use by {who}; wait for it to finish, "
                            "or add --wait to queue behind it") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                 "command": self.command}).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None


class RunDir:
    """One run's folder; stage outputs are reached only through ``output(stage)``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.notices: list[str] = []  # damage found and repaired, for the log
        self._verified: set[str] = set()  # stages whose files this command checked (once is enough)

    def output(self, stage: str) -> Path:
        """Finished output folder of ``stage``; a clear error if that stage has not run."""
        out = self.path / stage
        if not (out / STAGE_RECORD).is_file():
            raise CompError(
                f"{out} is missing: run `comp run stage={stage}` first (or stage=all)"
            )
        return out

    def record(self, stage: str) -> dict[str, Any] | None:
        """The finished stage's ``stage.json``, or None when it has not finished.

        A damaged record (not valid JSON, e.g. truncated) counts as unfinished: the stage
        runs again and says so."""
        path = self.path / stage / STAGE_RECORD
        if not path.is_file():
            return None
        try:
            return read_json(path)
        except (ValueError, UnicodeDecodeError):
            notice = f"{path} is damaged (not valid JSON): stage {stage} will run again"
            if notice not in self.notices:
                self.notices.append(notice)
            return None

    def outdated(self, stage: str) -> list[str]:
        """The stages ``stage`` read whose output has been published anew since (retrained):
        what it holds was built from outputs that are gone. Records older than this check
        say nothing, and count as current."""
        read = (self.record(stage) or {}).get("read", {})
        return [dep for dep, output in read.items() if (self.record(dep) or {}).get("output_id") != output]

    def result(self, stage: str):
        """The finished stage's result (``comp.records``), its files checked first; a clear
        error if the stage has not run."""
        from comp.records import result_of

        self.output(stage)
        self.verify(stage)
        return result_of(self.record(stage))

    def verify(self, stage: str) -> None:
        """Refuse with one line when a file of the finished stage differs from its checksum
        recorded at publication (truncated, edited, deleted). Checked once per command."""
        if stage in self._verified:
            return
        record = self.record(stage)
        folder = self.path / stage
        for name, digest in (record or {}).get("files", {}).items():
            path = folder / name
            if not path.is_file() or file_sha256(path) != digest:
                what = "is missing" if not path.is_file() else "is damaged (its checksum differs from the one " \
                                                               "recorded when the stage finished)"
                raise CompError(f"{path} {what}; rerun the stage with `comp run stage={stage} overwrite=true`")
        self._verified.add(stage)

    def partial(self, stage: str, key: str) -> Path:
        """Work folder for ``stage``; kept across interruptions while ``key`` is unchanged."""
        work = self.path / f"{stage}.partial"
        marker = work / ".key"
        if work.exists() and (not marker.is_file() or marker.read_text() != key):
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        # A write cut by a kill leaves its temporary file (comp.files.atomic_path): never publish one.
        for stale in work.rglob(".*.tmp"):
            stale.unlink(missing_ok=True)
        if not marker.is_file():
            write_text(marker, key)
        return work

    def publish(self, stage: str, record: dict[str, Any]) -> Path:
        """Write ``stage.json`` (with every file's checksum) into the work folder and swap it
        in as the stage's output."""
        work = self.path / f"{stage}.partial"
        (work / ".key").unlink(missing_ok=True)
        write_json(work / STAGE_RECORD, {**record, "files": checksums(work)})
        final = self.path / stage
        self._verified.discard(stage)
        trash = self.path / f".{stage}.old"
        if trash.exists():
            shutil.rmtree(trash)
        if final.exists():
            os.replace(final, trash)
        os.replace(work, final)
        shutil.rmtree(trash, ignore_errors=True)
        return final
