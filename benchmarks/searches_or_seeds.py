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
import setting_ab  # noqa: E402

from comp.demo import DEMOS  # noqa: E402

NO_SEARCH = ("regularize.changes=[]", "tune.coarse_trials=0", "tune.fine_trials=0")


def main(argv: list[str]) -> int:
    names = [a for a in argv if a in DEMOS or a == "mnist5k"] or ["digits", "street", "mnist5k"]
    budget = next((a.split("=", 1)[1] for a in argv if a.startswith("budget=")), "5m")
    return setting_ab.main([*names, f"budget={budget}", *(f"against={a}" for a in NO_SEARCH)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
