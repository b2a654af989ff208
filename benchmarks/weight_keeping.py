"""What keeping epoch weights for the ensemble costs in training, side by side.

`python benchmarks/weight_keeping.py [digits] [mnist5k] [folds=5]` trains `stage=baseline` on a
dataset twice, alternately in fresh run directories: with the defaults (top-3 epochs'
weights, the SWA mean of the last 5 epochs, the optimizer's EMA of the weights, all in the
resume state after every epoch) and with `train.snapshots=0 train.swa_epochs=0
train.keep_ema=0`. It prints the baseline stage's seconds for each and their ratio, and
whether the OOF scores are equal (they must be: EMA only watches, it is not evaluated).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from recipe_defaults import dataset  # noqa: E402

OFF = ["train.snapshots=0", "train.swa_epochs=0", "train.keep_ema=0"]


def seconds(competition: str, args: list[str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as scratch:
        comp = Path(sys.executable).with_name("comp")
        subprocess.run([str(comp), "run", "stage=baseline", f"competition={competition}", "train.lr=2e-3", *args],
                       cwd=scratch, check=True, capture_output=True)
        (record,) = Path(scratch, "runs").glob("*/baseline/stage.json")
        data = json.loads(record.read_text())
        return data["seconds"], data["score"]


def main(argv: list[str]) -> int:
    names = [a for a in argv if a in ("digits", "mnist5k")] or ["digits"]
    folds = next((a for a in argv if a.startswith("folds=")), "folds=5").split("=")[1]
    for name in names:
        competition, _ = dataset(name)
        common = [f"split.folds={folds}"]
        off_s, off_score = seconds(competition, common + OFF)
        on_s, on_score = seconds(competition, common)
        print(f"{name}: baseline {on_s:.1f}s keeping weights vs {off_s:.1f}s without: ratio {on_s / off_s:.3f}; "
              f"OOF {on_score:.5f} vs {off_score:.5f} ({'equal' if on_score == off_score else 'DIFFERENT'})",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
