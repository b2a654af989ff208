"""Native fits beside a busy process: the OpenMP team sized to the free cores vs all cores.

    python benchmarks/threads.py [repeats=5] [catboost]

Fits scikit-learn's histogram gradient boosting (what the ``hgb`` model plugin trains; with
``catboost``, the ``catboost`` plugin's CatBoost, 300 iterations, whose own thread pool is
sized from the OpenMP limit comp sets) on
two of scikit-learn's bundled tables: breast cancer (455 rows of 30 columns, a fold of the
demo) and digits as a table (1,437 rows of 64 columns, 10 classes). Each fit runs in a fresh
process, alone and then beside one CPU-bound process (a Python busy loop), with the pool
at every core (OpenMP's default) and at ``comp.threads.free_cores()`` (what comp uses).
Prints the median seconds and the ratios; target: beside the busy process, comp's pool is
no slower than alone by more than the share of the cores the busy process takes, and the
limit costs nothing on a quiet machine (ratio alone <= 1.05).
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time

FIT = """
import sys, time
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.ensemble import HistGradientBoostingClassifier
from comp.threads import native_threads
X, y = (load_breast_cancer if sys.argv[1] == "breast-cancer" else load_digits)(return_X_y=True)
n = int(len(y) * 0.8)
def fit():
    if sys.argv[3] == "catboost":
        import pandas as pd
        from comp_plugins.catboost_model import CatBoostTable
        CatBoostTable(iterations=300).fit(pd.DataFrame(X[:n]), y[:n])
    else:
        HistGradientBoostingClassifier(max_iter=300, early_stopping=False, random_state=0).fit(X[:n], y[:n])
began = time.perf_counter()
if sys.argv[2] == "free":
    with native_threads() as threads:
        fit()
else:
    threads = "all"
    fit()
print(time.perf_counter() - began, threads)
"""


def _fit(table: str, pool: str, model: str) -> tuple[float, str]:
    out = subprocess.run([sys.executable, "-c", FIT, table, pool, model], check=True, capture_output=True, text=True)
    seconds, threads = out.stdout.split()
    return float(seconds), threads


def main(argv: list[str]) -> int:
    repeats = int(next((a for a in argv if a.startswith("repeats=")), "repeats=5").split("=")[1])
    model = "catboost" if "catboost" in argv else "hgb"
    print("| table | pool | alone | beside a busy process | busy / alone |")
    print("|---|---|---|---|---|")
    for table in ("breast-cancer", "digits"):
        times: dict[tuple[str, str], float] = {}
        used: dict[tuple[str, str], str] = {}
        for busy in (False, True):
            loop = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                time.sleep(0.5 if busy else 0.0)
                # interleaved, so a slow spell of the machine falls on both pools alike
                runs = {pool: [] for pool in ("all", "free")}
                for _ in range(repeats):
                    for pool in runs:
                        runs[pool].append(_fit(table, pool, model))
                for pool, fits in runs.items():
                    times[pool, busy] = statistics.median(s for s, _ in fits)
                    used[pool, busy] = "/".join(sorted({t for _, t in fits}))
            finally:
                if loop:
                    loop.kill()
                    loop.wait()
        for pool in ("all", "free"):
            print(f"| {table} | {pool} ({used[pool, False]} alone, {used[pool, True]} beside) | "
                  f"{times[pool, False]:.2f}s | {times[pool, True]:.2f}s | {times[pool, True] / times[pool, False]:.2f} |")
        print(f"| {table} | free vs all | {times['free', False] / times['all', False]:.2f} | "
              f"{times['free', True] / times['all', True]:.2f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
