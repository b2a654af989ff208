"""Time `comp run stage=inspect` on the digits demo: cold decode cache, then warm.

Target (issue 3): the report is shown in under 10 s on a 2-core CPU machine.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    comp = str(Path(sys.executable).with_name("comp"))
    worst = 0.0
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "COMP_CACHE": str(Path(scratch) / "cache")}
        subprocess.run([comp, "run", "stage=inspect", "run=build"], cwd=scratch, env=env, check=True,
                       capture_output=True)  # builds the demo; not timed
        for run, label in (("cold", "cold decode cache"), ("warm", "warm decode cache")):
            if run == "cold":
                for entry in (Path(scratch) / "cache" / "images").glob("*"):
                    subprocess.run(["rm", "-rf", str(entry)], check=True)
            began = time.monotonic()
            subprocess.run([comp, "run", "stage=inspect", f"run={run}"], cwd=scratch, env=env, check=True,
                           capture_output=True)
            elapsed = time.monotonic() - began
            worst = max(worst, elapsed)
            print(f"{label}: {elapsed:.2f}s")
    return 0 if worst < 10 else 1


if __name__ == "__main__":
    sys.exit(main())
