"""How many threads a native fit may use: the cores that are free now, not all of them.

OpenMP's worker threads busy-wait between parallel regions. When another process holds
one of the cores, a team as large as the machine waits on its slowest member at every
region: a histogram gradient-boosting fit of a 455-row table took 3.1x longer beside one
busy process with 2 threads on 2 cores, and 0.8x with 1 thread (benchmarks/threads.py). Sizing the team to the cores that are idle keeps a shared core
from stalling the fit, and on a quiet machine changes nothing.

TensorFlow's own pools are left at their default: its threads do not stall on a shared core
the way an OpenMP team does. Beside one busy process a Keras fit on 2 cores took 1.98x its
time alone, the share of the machine the busy process takes, and pools of 1 or 2 threads
were no faster beside it (1 thread: 21% slower alone; benchmarks/tf_threads.py).

Reading the idle share of the cores from ``/proc/stat`` is written by hand: no library comp
already depends on reports it (psutil would, as a new dependency).
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Callable, Iterator


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies summed over every core, from the kernel's first ``cpu`` line."""
    with open("/proc/stat") as stat:
        fields = [float(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # user..steal; guest time is already inside user
    return total - idle, total


def free_cores(sample_s: float = 0.1, cores: int | None = None,
               read: Callable[[], tuple[float, float]] = _cpu_times) -> int:
    """The cores idle over the next ``sample_s`` seconds (at least 1; all of them where the
    kernel's counters cannot be read)."""
    cores = cores or os.cpu_count() or 1
    try:
        busy0, total0 = read()
        time.sleep(sample_s)
        busy1, total1 = read()
    except (OSError, ValueError, IndexError):
        return cores
    elapsed = total1 - total0
    if elapsed <= 0:
        return cores
    busy_cores = cores * (busy1 - busy0) / elapsed
    # A core more than half taken by another process is not free: its share stalls a team.
    return max(1, min(cores, int(cores - busy_cores + 0.5)))


@contextlib.contextmanager
def native_threads(threads: int | None = None) -> Iterator[int]:
    """Limit OpenMP, BLAS and joblib's thread pools to ``threads`` (default: ``free_cores()``)
    inside the block; yields the number used. Uses threadpoolctl and joblib (scikit-learn's own
    dependencies)."""
    from threadpoolctl import threadpool_limits

    threads = threads or free_cores()
    from joblib import parallel_config

    # joblib's pool too (the forests' trees, n_jobs=None): one count for every native pool.
    with threadpool_limits(limits=threads), parallel_config(n_jobs=threads, prefer="threads"):
        yield threads
