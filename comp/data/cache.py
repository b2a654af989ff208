"""Decoded images cached once, keyed by file content, read from disk on demand when large.

Images are decoded straight into the entry's ``pixels.npy`` (``RowFile``), so a set larger
than memory can be cached; entries above ``in_memory_bytes`` (``data.in_memory_mb``) are
opened as ``comp.data.rows.DiskRows``, read row by row on demand, smaller ones into memory.

The key hashes every file's bytes plus the target geometry, so an edited, added or
removed image gives a new key (the old entry is simply not used again).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from comp.data.images import MAX_PIXELS, decode_all
from comp.data.rows import DiskRows

DECODER_VERSION = "3"  # bump when decoding, resizing or the entry's content changes, so old entries are ignored
# 3: a bad image's reason is stored without its path (an entry serves every copy of the files)
IN_MEMORY_BYTES = 256 * 2**20  # data.in_memory_mb's default: larger entries stay on disk, read by rows


@dataclass
class ImageSet:
    pixels: np.ndarray | DiskRows  # uint8 (n, h, w, c); rows of bad images are zeros
    geometry: tuple[int, int, int]
    bad: dict[int, str]  # row -> why it could not be decoded
    shapes: list[tuple[int, ...]]  # each file's own (h, w, c) before resizing; () when bad
    from_cache: bool


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes; something that is not a readable file gets a digest of what
    it is, and the decoder reports it as a bad image."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        return hashlib.sha256(f"unreadable {path.name}: {type(exc).__name__}".encode()).hexdigest()


def file_digests(paths: list[Path], index_path: Path | None = None) -> list[str]:
    """``file_digest`` of each path. With ``index_path`` (a JSON of path -> [size, mtime_ns,
    digest]) a file whose size and modification time are unchanged is not read again, and
    the index is updated for the ones that were (as make and rsync judge a file changed)."""
    index: dict[str, list] = {}
    if index_path is not None and index_path.is_file():
        try:
            index = json.loads(index_path.read_text())
        except (OSError, ValueError):
            index = {}  # a damaged index is rebuilt, never trusted
    out, changed = [], False
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            out.append(file_digest(path))
            continue
        key, stamp = str(path), [stat.st_size, stat.st_mtime_ns]
        entry = index.get(key)
        if isinstance(entry, list) and entry[:2] == stamp:
            out.append(entry[2])
            continue
        digest = file_digest(path)
        index[key], changed = [*stamp, digest], True
        out.append(digest)
    if changed and index_path is not None:
        try:
            from comp.files import write_text

            write_text(index_path, json.dumps(index))
        except OSError:
            pass  # an unwritable cache costs the next command a rehash, nothing else
    return out


def load_image_set(paths: list[Path], digests: list[str], cache_dir: Path,
                   size: list[int] | None = None, channels: int | None = None,
                   max_pixels: int = MAX_PIXELS, in_memory_bytes: int = IN_MEMORY_BYTES) -> ImageSet:
    """Decode ``paths`` (or reuse the cached decode of identical files) at the given geometry."""
    key = _key(digests, size, channels, max_pixels)
    entry = cache_dir / key
    if (entry / "meta.json").is_file():
        cached = _read_entry(entry, in_memory_bytes)
        if cached is not None:
            if not (size and channels):
                _alias(entry, cache_dir / _key(digests, list(cached.geometry[:2]), cached.geometry[2], max_pixels))
            return _named(cached, paths)
        print(f"notice: the decoded-image cache entry {entry} is damaged; decoding the images again", flush=True)
        if entry.is_symlink():
            entry.unlink()
        shutil.rmtree(entry, ignore_errors=True)

    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache_dir))
    try:
        # Decoded straight into the entry's file: the set never has to fit in memory.
        rows, geometry, bad, shapes = decode_all(paths, size, channels, max_pixels,
                                                 allocate=lambda shape: RowFile(staging / "pixels.npy", shape))
        rows.close()
        reasons = {row: _unnamed(why, paths[row]) for row, why in bad.items()}
        (staging / "meta.json").write_text(json.dumps({"geometry": geometry, "bad": reasons, "shapes": shapes,
                                                       "bytes": (staging / "pixels.npy").stat().st_size,
                                                       "sha256": rows.sha256()}))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        os.replace(staging, entry)  # atomic: a reader sees a whole entry or none
    except OSError:  # another process published the same entry first
        shutil.rmtree(staging, ignore_errors=True)
    published = _read_entry(entry, in_memory_bytes, verify=False)  # hashed as it was written
    if published is None:
        raise OSError(f"{entry}: the decoded-image cache entry just written cannot be read back")
    if not (size and channels):
        # The most common geometry was found: the same decode is the entry for that geometry
        # named explicitly (training reads the images at the geometry it recorded), so link it
        # rather than decode 100k images twice.
        _alias(entry, cache_dir / _key(digests, list(published.geometry[:2]), published.geometry[2], max_pixels))
    return _named(ImageSet(published.pixels, published.geometry, published.bad, published.shapes, False), paths)


# The entry is keyed by the files' content, so copies of a competition in other folders share
# it: a bad image's message must name the file of this call, not of the call that decoded it.
def _unnamed(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _named(images: ImageSet, paths: list[Path]) -> ImageSet:
    return replace(images, bad={row: f"{paths[row]}: {why}" for row, why in images.bad.items()})


def _key(digests: list[str], size, channels, max_pixels: int) -> str:
    return hashlib.sha256(json.dumps([DECODER_VERSION, digests, size, channels, max_pixels]).encode()).hexdigest()[:24]


def _alias(entry: Path, alias: Path) -> None:
    """``alias`` as a link to ``entry`` (atomically; a file system without links just decodes again)."""
    if alias.exists():
        return
    staging = alias.with_name(f".{alias.name}.{os.getpid()}.link")
    try:
        os.symlink(entry.name, staging, target_is_directory=True)
        os.replace(staging, alias)
    except OSError:
        try:
            os.unlink(staging)
        except OSError:
            pass


class RowFile:
    """A new ``.npy`` file of uint8 rows, written row by row with ``pwrite``: the rows go to
    the page cache, not into this process's memory (a write through a memory map would
    keep every written page resident until it is unmapped)."""

    def __init__(self, path: Path, shape: tuple[int, ...]):
        header = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)  # zeros, sparse
        self.path, self.offset, self.row_shape = path, header.offset, shape[1:]
        del header
        self.row_bytes = int(np.prod(self.row_shape))
        self.fd = os.open(path, os.O_WRONLY)

    def __setitem__(self, row: int, image) -> None:
        data = np.ascontiguousarray(np.broadcast_to(np.asarray(image, dtype=np.uint8), self.row_shape))
        os.pwrite(self.fd, data.tobytes(), self.offset + row * self.row_bytes)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    __del__ = close  # a decode that failed midway leaves no open file behind

    def sha256(self, chunk: int = 2**24) -> str:
        """sha256 of the rows' bytes (as ``_sha256`` of the array would give), read from the file."""
        digest = hashlib.sha256()
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            while block := f.read(chunk):
                digest.update(block)
        return digest.hexdigest()


def _sha256(pixels: np.ndarray, rows: int = 4096) -> str:
    """sha256 of the array's bytes, read a slice at a time (a memory map stays on disk)."""
    digest = hashlib.sha256()
    for start in range(0, len(pixels), rows):
        digest.update(np.ascontiguousarray(pixels[start:start + rows]).tobytes())
    return digest.hexdigest()


def _read_entry(entry: Path, in_memory_bytes: int, verify: bool = True) -> ImageSet | None:
    """A cache entry, or None when it is damaged: unreadable metadata, a file of the wrong
    size, or (when it is read into memory, where hashing it all is cheap) other bytes
    than were written."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        size = (entry / "pixels.npy").stat().st_size
        if size != meta["bytes"]:
            return None
        in_memory = size <= in_memory_bytes
        pixels = np.load(entry / "pixels.npy") if in_memory else DiskRows.open(entry / "pixels.npy")
        if verify and in_memory and _sha256(pixels) != meta["sha256"]:
            return None
        return ImageSet(pixels, tuple(meta["geometry"]), {int(k): v for k, v in meta["bad"].items()},
                        [tuple(s) for s in meta["shapes"]], True)
    except (OSError, ValueError, KeyError, EOFError):
        return None
