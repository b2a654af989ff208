"""How well does the run plan forecast an epoch? (comp.planner's EPOCH_FACTOR, EPOCH_SECONDS)

`python benchmarks/forecast.py [digits] [street] [mnist5k] [large] [budget=2m]` (`pip install -e ".[bench]"`)
runs `comp run stage=baseline budget=B` on each dataset in a fresh process and compares the
plan's forecast seconds of one epoch at its planned size (stage check's timed steps x
``EPOCH_FACTOR`` + ``EPOCH_SECONDS``) with the steady epochs the baseline's folds measured. The
constants are fitted over these datasets (a forecast too high leaves the budget unspent and
picks a smaller image than needed; too low, and the folds shrink their schedules to fit).
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from datasets import mnist5k, mnist5k_large  # noqa: E402

from comp.demo import cache_root, demo_competition  # noqa: E402


def competition(name: str) -> str:
    if name == "mnist5k":
        return str(mnist5k()[0])
    if name == "large":
        return str(mnist5k_large()[0])
    demo_competition(cache_root(), name)
    return f"demo:{name}"


def measure(name: str, budget: str) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run([str(Path(sys.executable).with_name("comp")), "run", "stage=baseline",
                               f"competition={competition(name)}", "run=bench", f"budget={budget}",
                               "baseline.stretch=1"], cwd=scratch, capture_output=True, text=True)
        if done.returncode:
            return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
        run = Path(scratch, "runs", "bench")
        plan = json.loads((run / "plan.json").read_text())
        folds = json.loads((run / "baseline" / "stage.json").read_text())["plan"]
    steady = [f["epoch_seconds"] for f in folds if f.get("epoch_seconds")]
    measured = statistics.median(steady)
    return {"size": plan["size"], "forecast": plan["epoch_seconds"], "measured": measured,
            "ratio": measured / plan["epoch_seconds"], "epochs": [f["epochs"] for f in folds]}


def main(argv: list[str]) -> int:
    names = [a for a in argv if "=" not in a] or ["digits", "street", "mnist5k", "large"]
    budget = next((a.split("=", 1)[1] for a in argv if a.startswith("budget=")), "2m")
    print("| dataset | budget | planned size | forecast epoch | measured epoch (median of folds) | measured / "
          "forecast | epochs a fold |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        r = measure(name, budget)
        if "error" in r:
            print(f"| {name} | {budget} | failed: {r['error']} |", flush=True)
            continue
        size = "x".join(map(str, r["size"])) if r["size"] else "-"
        print(f"| {name} | {budget} | {size} | {r['forecast']:.3f} s | {r['measured']:.3f} s | {r['ratio']:.2f} "
              f"| {r['epochs']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
