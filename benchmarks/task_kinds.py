"""`comp run stage=all` on every bundled demo (one per task kind) with the default config.

Prints, per demo: the task, the model, the OOF score, the score of the submission on the
demo's hidden test labels, and the wall time. Extra arguments go to every run, e.g.
`python benchmarks/task_kinds.py budget=5m` or `... street wine` to pick demos.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from comp.demo import DEMOS, cache_root, demo_competition, holdout_score


def run(name: str, extra: list[str]) -> dict:
    demo_competition(cache_root(), name)
    with tempfile.TemporaryDirectory() as scratch:
        began = time.monotonic()
        comp = Path(sys.executable).with_name("comp")
        done = subprocess.run([str(comp), "run", "stage=all", f"competition=demo:{name}", *extra], cwd=scratch,
                              capture_output=True, text=True)
        elapsed = time.monotonic() - began
        if done.returncode != 0:
            return {"demo": name, "error": done.stderr.strip().splitlines()[-1]}
        (path,) = Path(scratch, "submissions").glob("*.csv")
        record = json.loads(Path(scratch, "runs", name, "baseline", "stage.json").read_text())
        metric, holdout = holdout_score(cache_root(), name, path)
        return {"demo": name, "task": record["task"], "model": record["model"]["name"], "metric": metric,
                "oof": record["score"], "holdout": holdout, "seconds": elapsed}


def main(argv: list[str]) -> int:
    names = [a for a in argv if a in DEMOS] or list(DEMOS)
    extra = [a for a in argv if a not in DEMOS]
    print(f"| demo | task | model | metric | OOF | holdout | wall |  (extra: {' '.join(extra) or 'none'})")
    print("|---|---|---|---|---|---|---|")
    failed = 0
    for name in names:
        r = run(name, extra)
        if "error" in r:
            failed += 1
            print(f"| {name} | failed: {r['error']} |")
            continue
        print(f"| {name} | {r['task']} | {r['model']} | {r['metric']} | {r['oof']:.4f} | {r['holdout']:.4f} "
              f"| {r['seconds']:.0f} s |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
