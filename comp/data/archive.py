"""A competition as downloaded: one ``.zip``, unpacked once into the cache.

Kaggle's "Download all" gives ``<name>.zip``, often holding further zips (``train.zip``,
``test.zip``). ``competition=<name>.zip`` unpacks it into
``<cache>/unpacked/<sha256 prefix>/<name>/`` (inner zips beside them, each once), and the run
reads that folder; the zip itself is only read. The folder is keyed by the zip's content, so
a changed download is unpacked anew and an unchanged one never twice. An unpack is written
to a scratch folder and renamed when complete: a killed unpack leaves nothing half-made.
Python's ``zipfile`` does the reading; what is here is the layout and the safety checks.
"""
from __future__ import annotations

import shutil
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath

from comp.errors import DataError
from comp.files import file_sha256

FOLDER = "unpacked"
STALE_SECONDS = 6 * 3600


def is_archive(competition: str) -> bool:
    return competition.lower().endswith(".zip")


def unpack(archive: Path, cache: Path) -> Path:
    """The competition folder ``archive`` unpacks to (unpacking it the first time)."""
    archive = Path(archive).expanduser()
    if not archive.is_file():
        raise DataError(f"competition archive {archive} does not exist; pass competition=PATH.zip or a folder")
    if not zipfile.is_zipfile(archive):
        raise DataError(f"{archive}: not a zip archive (or a damaged one); download it again or unpack it yourself "
                        "and pass the folder")
    digest = file_sha256(archive)
    home = Path(cache) / FOLDER / digest[:16]
    done = home / archive.stem
    if done.is_dir():
        return _root(done)
    home.mkdir(parents=True, exist_ok=True)
    for stale in home.glob(f".{archive.stem}.*"):  # an unpack killed part-way (a live one is minutes old at most)
        if time.time() - stale.stat().st_mtime > STALE_SECONDS:
            shutil.rmtree(stale, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{archive.stem}.", dir=home))
    try:
        _extract(archive, scratch)
        for inner in sorted(scratch.rglob("*.zip")):  # train.zip, test.zip inside the download
            if zipfile.is_zipfile(inner):
                _extract(inner, inner.parent if _wrapped(inner) else inner.with_suffix(""))
                inner.unlink()
        try:
            scratch.rename(done)
        except OSError:  # another command unpacked it meanwhile
            if not done.is_dir():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _root(done)


def _wrapped(inner: Path) -> bool:
    """Whether every member of the zip ``inner`` sits in one folder (``test.zip`` holding
    ``test/...``); if not (files at its top), they are unpacked into a folder named as the zip."""
    with zipfile.ZipFile(inner) as zf:
        names = [PurePosixPath(n) for n in zf.namelist() if not n.startswith("__MACOSX")]
    return len({n.parts[0] for n in names}) == 1 and all(len(n.parts) > 1 or n.as_posix().endswith("/")
                                                           for n in names)


def _root(folder: Path) -> Path:
    """The folder holding the competition's files: ``folder``, or the single folder a zip
    wrapped them in."""
    entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir() and not (folder / "sample_submission.csv").is_file():
        return _root(entries[0])
    return folder


def _extract(archive: Path, into: Path) -> None:
    """Every member of ``archive`` into ``into``, refusing a member whose path would leave it."""
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            parts = PurePosixPath(member.filename.replace("\\", "/")).parts
            if member.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise DataError(f"{archive}: member {member.filename!r} would be written outside the folder it is "
                                "unpacked to; this archive is not a competition download")
        try:
            zf.extractall(into)
        except (zipfile.BadZipFile, EOFError) as exc:
            raise DataError(f"{archive}: could not be unpacked ({type(exc).__name__}: {exc}); download it again") \
                from None
        except OSError as exc:
            raise DataError(f"{archive}: could not be unpacked into {into} ({exc.strerror or exc}); free space there "
                            "(the cache: paths.cache or $COMP_CACHE) or pass the unpacked folder") from None
