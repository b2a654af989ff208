"""Epoch time on one CPU device, on two logical CPU devices (MirroredStrategy) and on two
localhost workers (MultiWorkerMirroredStrategy), side by side in one run.

    python benchmarks/scaling.py [mnist5k|digits] [epochs=6]

Each setup runs `comp run stage=baseline` (2 folds, ``epochs`` epochs, the default model
and augmentation) in fresh processes with the same global batch (64: one replica of 64,
or two of 32, LR unscaled) and reports the mean seconds per epoch over both folds
(training, validation and the loop's bookkeeping; the first epoch's tracing included,
spread over ``epochs``) and the ratio to one device.

What CPU figures say: the cost of the strategy's machinery (replicated variables,
all-reduce, a dataset split per replica, for workers a gRPC ring on localhost) relative
to one device, when the replicas share the same two cores. They cannot show a speed-up
(two logical CPUs are one thread pool cut in two; two workers compete for the same
cores), and they predict nothing about GPU throughput, where each replica owns its
device and the all-reduce runs over NVLink or the network.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from recipe_defaults import dataset  # noqa: E402

from comp.training.strategy import localhost_cluster  # noqa: E402


def epoch_seconds(run: Path) -> float:
    folds = [json.loads(p.read_text()) for p in sorted(run.glob("baseline/fold_*/done.json"))]
    return sum(f["seconds"] for f in folds) / sum(f["epochs"] for f in folds)


def main(argv: list[str]) -> int:
    name = next((a for a in argv if a in ("digits", "mnist5k")), "mnist5k")
    epochs = int(next((a for a in argv if a.startswith("epochs=")), "epochs=6").split("=")[1])
    competition = dataset(name)[0]
    exe = str(Path(sys.executable).with_name("comp"))
    common = ["run", "stage=baseline", f"competition={competition}", "split.folds=2", f"train.epochs={epochs}",
              "train.lr=1e-3", "train.lr_scaling=none", "split.duplicate_aware=false"]
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        setups = {"1 device": ["run=one"],
                  "2 logical CPUs": ["run=two", "train.logical_cpus=2", "train.batch_size=32"]}
        for label, extra in setups.items():
            subprocess.run([exe, *common, *extra], cwd=work, check=True, capture_output=True)
            results[label] = epoch_seconds(work / "runs" / extra[0].split("=")[1])
        cluster = localhost_cluster(2)
        procs = [subprocess.Popen([exe, *common, "run=mw", "train.batch_size=32"], cwd=work, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                                             "task": {"type": "worker", "index": i}})})
                 for i in range(2)]
        for p in procs:
            out, err = p.communicate(timeout=3600)
            if p.returncode:
                print(err[-2000:])
                return 1
        results["2 localhost workers"] = epoch_seconds(work / "runs/mw")
    base = results["1 device"]
    print(f"{name}, 2 folds x {epochs} epochs, global batch 64, {os.cpu_count()} cores:")
    for label, seconds in results.items():
        print(f"  {label:<20} {seconds:6.2f} s/epoch  {base / seconds:5.2f}x one device's speed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
