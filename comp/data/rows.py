"""Image rows kept on disk and read on demand, for sets larger than memory.

A decoded-image cache entry above ``data.in_memory_mb`` is opened as :class:`DiskRows`:
an array-like over the entry's ``.npy`` file whose rows are read with ``preadv`` only
when indexed. Unlike a ``numpy.memmap`` the rows read never stay mapped into this
process (a memory map keeps every page it touched resident until it is unmapped, so one
epoch over a 100k-image set would add the whole file to the process's memory); the
kernel's page cache keeps the file hot instead. No library offers this (``np.memmap``
maps; ``np.fromfile`` reads one contiguous range), so it is written here.

``subset(positions)`` gives a lazy view of some rows (a fold's), which the training loop
gathers batch by batch: no copy of a fold is ever made. :class:`MemoryRows` is the same
view over an array held in memory (sets below ``data.in_memory_mb``). :class:`StackedRows` joins such
parts (train then test) for the inspect stage's chunked statistics.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

READ_BYTES = 64 * 2**20  # iteration reads this much at a time (4,096 rows of 64x64x3)
MAX_PREAD = 2**30  # bytes per preadv call (Linux returns at most ~2 GiB per call)


class _File:
    """One read-only descriptor shared by a DiskRows and its subsets, closed with the last."""

    def __init__(self, path: Path):
        self.fd = os.open(path, os.O_RDONLY)

    def __del__(self):
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)
            self.fd = None


class RowView:
    """Rows ``index`` (which, in which order; None: all) of a base array of ``base_shape``,
    read only when indexed: an int, a slice or an integer array gives numpy arrays,
    ``subset`` another lazy view. Subclasses say where the rows live (``_fetch``)."""

    streamed = True  # the training loop gathers its batches from it instead of holding it

    def __init__(self, base_shape: tuple[int, ...], dtype, index: np.ndarray | None):
        self.base_shape, self.dtype = tuple(int(s) for s in base_shape), np.dtype(dtype)
        self.index = None if index is None else np.asarray(index, dtype=np.int64)
        self.row_bytes = int(np.prod(self.base_shape[1:])) * self.dtype.itemsize

    def _fetch(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` of the base array, in that order."""
        raise NotImplementedError

    def _view(self, index: np.ndarray) -> "RowView":
        """The same base array's rows ``index``."""
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.base_shape[1:])

    @property
    def ndim(self) -> int:
        return len(self.base_shape)

    @property
    def nbytes(self) -> int:
        return len(self) * self.row_bytes

    def __len__(self) -> int:
        return self.base_shape[0] if self.index is None else len(self.index)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            position = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= position < len(self):
                raise IndexError(f"row {key} of {len(self)}")
            return self.read(np.array([position]))[0]
        if isinstance(key, slice):
            return self.read(np.arange(*key.indices(len(self))))
        return self.read(np.asarray(key))

    def __iter__(self) -> Iterator[np.ndarray]:
        step = max(1, READ_BYTES // max(self.row_bytes, 1))
        for start in range(0, len(self), step):
            yield from self[start:start + step]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        rows = self[:]
        return rows if dtype is None else rows.astype(dtype)

    def subset(self, positions) -> "RowView":
        """A lazy view of rows ``positions`` (of this view), nothing read."""
        positions = self._positions(positions)
        return self._view(positions if self.index is None else self.index[positions])

    def read(self, positions: np.ndarray) -> np.ndarray:
        """Rows ``positions`` of this view, in that order."""
        positions = self._positions(positions)
        return self._fetch(positions if self.index is None else self.index[positions])

    def _positions(self, positions) -> np.ndarray:
        """Integer positions in this view (negative ones from its end; a boolean mask as its rows)."""
        positions = np.asarray(positions)
        if positions.dtype == bool:
            if positions.shape != (len(self),):
                raise IndexError(f"a boolean mask of {positions.shape} for {len(self)} rows")
            return np.flatnonzero(positions)
        if positions.size and not np.issubdtype(positions.dtype, np.integer):
            raise IndexError(f"rows must be integers, not {positions.dtype}")
        positions = positions.astype(np.int64).reshape(-1)
        positions = np.where(positions < 0, positions + len(self), positions)
        if positions.size and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(f"rows outside 0..{len(self) - 1}")
        return positions


class MemoryRows(RowView):
    """Rows of an array held in memory: a fold's rows without copying them. The training
    loop gathers each batch inside TensorFlow from ``host_tensor()``, one tensor of the
    whole array shared by every view of it (made on first use, kept while a view lives):
    a gather through Python (``read``) would hold the GIL the training step needs
    (measured: mnist5k's epochs 18% slower)."""

    def __init__(self, array: np.ndarray, index: np.ndarray | None = None, shared: dict | None = None):
        super().__init__(array.shape, array.dtype, index)
        self.array = array
        self._shared = {} if shared is None else shared

    def _fetch(self, rows: np.ndarray) -> np.ndarray:
        return self.array[rows]

    def _view(self, index: np.ndarray) -> "MemoryRows":
        return MemoryRows(self.array, index, self._shared)

    def host_tensor(self):
        """The whole array as one host tensor (a copy, made once for all the views)."""
        if "tensor" not in self._shared:
            import tensorflow as tf  # only the training path needs it

            with tf.init_scope(), tf.device("/cpu:0"):  # eager even when first asked inside a tf.data map
                self._shared["tensor"] = tf.convert_to_tensor(self.array)
        return self._shared["tensor"]


class DiskRows(RowView):
    """Rows of a 2+-dimensional ``.npy`` array in ``path`` (see the module docstring)."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype=np.uint8,
                 index: np.ndarray | None = None, file: _File | None = None):
        super().__init__(shape, dtype, index)
        self.path, self.offset = Path(path), int(offset)
        # Opened here, not on first read: tf.data's parallel reads would race to open it.
        self._file = file or _File(self.path)

    @classmethod
    def open(cls, path: Path) -> "DiskRows":
        """The whole array of a C-ordered ``.npy`` file (its header read, nothing else)."""
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
        if fortran:
            raise ValueError(f"{path}: a Fortran-ordered array cannot be read by rows")
        return cls(path, offset, shape, dtype)

    def _view(self, index: np.ndarray) -> "DiskRows":
        return DiskRows(self.path, self.offset, self.base_shape, self.dtype, index, self._file)

    def _fetch(self, rows: np.ndarray) -> np.ndarray:
        """The file's rows are read sorted, each run of consecutive rows with one ``preadv``
        straight into the result (the call releases the GIL, so tf.data's parallel calls
        overlap)."""
        out = np.empty((len(rows), *self.base_shape[1:]), dtype=self.dtype)
        if not len(rows):
            return out
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        sorted_out = out if np.array_equal(order, np.arange(len(order))) else np.empty_like(out)
        flat = sorted_out.reshape(len(rows), -1).view(np.uint8)
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        fd = self._file.fd
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(ordered)]):
            buffer = memoryview(flat[start:stop]).cast("B")
            offset, done = self.offset + int(ordered[start]) * self.row_bytes, 0
            while done < len(buffer):  # one call reads at most ~2 GiB
                got = os.preadv(fd, [buffer[done:done + MAX_PREAD]], offset + done)
                if got <= 0:
                    raise OSError(f"{self.path}: short read ({done} of {len(buffer)} bytes); the file was "
                                  "truncated: delete it to decode the images again")
                done += got
        if sorted_out is not out:
            out[order] = sorted_out
        return out

    def __getstate__(self) -> dict:  # an open descriptor does not travel; the copy opens its own
        return {k: v for k, v in self.__dict__.items() if k != "_file"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._file = _File(self.path)


class StackedRows:
    """Parts (arrays or :class:`DiskRows` of one row shape) one after another, read by int,
    slice or iteration: train and test side by side without copying them into one array."""

    def __init__(self, *parts):
        self.parts = [p for p in parts if len(p)]
        first = parts[0]
        self.shape = (sum(len(p) for p in parts), *first.shape[1:])
        self.dtype, self.ndim = first.dtype, len(first.shape)
        self._starts = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            position = int(key) + (len(self) if key < 0 else 0)
            part = int(np.searchsorted(self._starts, position, side="right")) - 1
            return np.asarray(self.parts[part][position - self._starts[part]])
        if isinstance(key, slice) and key.step in (None, 1):
            start, stop, _ = key.indices(len(self))
            pieces = []
            for part, begin in zip(self.parts, self._starts):
                lo, hi = max(start - begin, 0), min(stop - begin, len(part))
                if lo < hi:
                    pieces.append(np.asarray(part[lo:hi]))
            return np.concatenate(pieces) if pieces else np.empty((0, *self.shape[1:]), self.dtype)
        raise TypeError("StackedRows takes an int or a contiguous slice")

    def __iter__(self) -> Iterator[np.ndarray]:
        for part in self.parts:
            yield from part


def stacked(*parts):
    """One array of the parts when all are in memory (small sets: a copy is cheap), else a
    :class:`StackedRows` reading them in place."""
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    return StackedRows(*parts)
