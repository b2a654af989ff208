"""Time README command 1 (`comp run stage=all` on the digits demo) in a scratch folder.

Prints wall time, OOF accuracy and holdout accuracy against the demo's hidden labels.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from comp.demo import cache_root, demo_competition, holdout_score


def main() -> int:
    demo_competition(cache_root())
    with tempfile.TemporaryDirectory() as scratch:
        began = time.monotonic()
        comp = Path(sys.executable).with_name("comp")
        subprocess.run([str(comp), "run", "stage=all"], cwd=scratch, check=True)
        elapsed = time.monotonic() - began
        (path,) = Path(scratch, "submissions").glob("*.csv")
        _, holdout = holdout_score(cache_root(), "digits", path)
        print(f"wall {elapsed:.1f}s  oof accuracy {path.stem.split('=')[1]}  holdout accuracy {holdout:.5f}")
        return 0 if elapsed < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
