"""One setting against the defaults, side by side, under a budget.

`python benchmarks/setting_ab.py [DEMO ...] [mnist5k] [large] [budget=5m] against=KEY=VALUE [against=...]
[code=DIR] [logs=DIR]` runs, for each dataset, `comp run stage=all budget=B` with the defaults and
then with the ``against`` settings (each in a fresh process, one after the other, alone on the
machine), and prints each run's wall time, OOF score, score on the hidden test labels and what
made the submission. The question it answers: should a default change? A candidate default is
judged this way on several datasets, at least one where an epoch is expensive (``large``:
mnist5k upscaled to 256x256), never on one. ``code=DIR`` runs the comp package found in DIR (a
`git worktree`), ``logs=DIR`` keeps each run's output (``DIR/defaults``, ``DIR/against``).
(mnist5k and large need `pip install -e ".[bench]"`.)
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from budget_adherence import run  # noqa: E402

from comp.demo import DEMOS  # noqa: E402


def main(argv: list[str]) -> int:
    names = [a for a in argv if a in DEMOS or a in ("mnist5k", "large")]
    budget = next((a.split("=", 1)[1] for a in argv if a.startswith("budget=")), "5m")
    against = tuple(a.split("=", 1)[1] for a in argv if a.startswith("against="))
    code = next((a.split("=", 1)[1] for a in argv if a.startswith("code=")), None)
    logs = next((a.split("=", 1)[1] for a in argv if a.startswith("logs=")), None)
    if not names or not against:
        print("usage: setting_ab.py NAME [NAME ...] against=KEY=VALUE [budget=5m] [code=DIR] [logs=DIR]",
              file=sys.stderr)
        return 2
    print(f"code: {code or 'this checkout'}; against: {' '.join(against)}")
    print("| competition | budget | settings | wall | OOF | holdout | submitted | bag |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        for label, extra in (("defaults", ()), ("against", against)):
            r = run(name, budget, busy=False, extra=extra, code=code, logs=logs and str(Path(logs, label)))
            shown = "defaults" if not extra else " ".join(extra)
            if "error" in r:
                print(f"| {name} | {budget} | {shown} | failed: {r['error']} |", flush=True)
                continue
            print(f"| {name} | {budget} | {shown} | {r['wall']:.0f} s | {r['oof']:.4f} | {r['holdout']:.4f} "
                  f"({r['metric']}) | {r['source']} | {r['bagged']} fold models |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
