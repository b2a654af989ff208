"""What the searches buy against giving their time to the main model and stage bag.

`python benchmarks/searches_or_seeds.py [DEMO ...] [mnist5k] [budget=5m]` runs, side by side
for each dataset, `comp run stage=all budget=B` with the defaults and with the searches
turned off (`regularize.changes=[] tune.coarse_trials=0 tune.fine_trials=0`: the run plan
then stretches the main model's schedule and stage bag trains more seeds with what is left),
and prints each run's wall time, OOF score, score on the hidden test labels and how many
fold models bag added. The question it answers: under a budget, does a search's expected
gain beat a seed ensemble's? (mnist5k needs `pip install -e ".[bench]"`.)
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from budget_adherence import run  # noqa: E402

from comp.demo import DEMOS  # noqa: E402

NO_SEARCH = ("regularize.changes=[]", "tune.coarse_trials=0", "tune.fine_trials=0")


def main(argv: list[str]) -> int:
    names = [a for a in argv if a in DEMOS or a == "mnist5k"] or ["digits", "street", "mnist5k"]
    budget = next((a.split("=", 1)[1] for a in argv if a.startswith("budget=")), "5m")
    print("| competition | budget | searches | wall | OOF | holdout | submitted | bag |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        for label, extra in (("on (default)", ()), ("off", NO_SEARCH)):
            r = run(name, budget, busy=False, extra=extra)
            if "error" in r:
                print(f"| {name} | {budget} | {label} | failed: {r['error']} |", flush=True)
                continue
            print(f"| {name} | {budget} | {label} | {r['wall']:.0f} s | {r['oof']:.4f} | {r['holdout']:.4f} "
                  f"({r['metric']}) | {r['source']} | {r['bagged']} fold models |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
