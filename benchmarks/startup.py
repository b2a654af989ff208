"""Start-up: how long the commands that do no work take (target: each < 1 s).

    python benchmarks/startup.py [repeats=5]

Runs `comp --help`, `comp plugins` and `comp run --help` as a user would (the installed
console script, a fresh process each time) and prints the best and median wall time of each.
Stage modules import their heavy libraries (TensorFlow, scikit-learn, SciPy) inside the
functions that use them, so listing stages and keys imports only pandas and numpy.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    repeats = int(next((a for a in argv if a.startswith("repeats=")), "repeats=5").split("=")[1])
    comp = Path(sys.executable).with_name("comp")
    worst = 0.0
    for args in (["--help"], ["plugins"], ["run", "--help"]):
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            subprocess.run([str(comp), *args], check=True, capture_output=True)
            times.append(time.perf_counter() - began)
        worst = max(worst, statistics.median(times))
        print(f"comp {' '.join(args)}: best {min(times):.2f}s, median {statistics.median(times):.2f}s")
    print(f"slowest median {worst:.2f}s ({'under' if worst < 1 else 'OVER'} the 1 s target)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
