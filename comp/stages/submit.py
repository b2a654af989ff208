"""Stage `submit`: submissions/<run>-<stage>-<metric>=<score>.csv, validated, never overwritten."""
from __future__ import annotations

import pandas as pd

from comp import artifacts
from comp.context import StageContext
from comp.submission import build_submission, validate_submission, write_submission

NAME = "submit"
HELP = "write the test predictions as a validated CSV in the format of sample_submission.csv"
CONFIG = ("paths.submissions",)
TRAINS = False


def inputs(cfg, available) -> dict[str, str]:
    return {"predict": "predict"}


def run(ctx: StageContext) -> dict:
    comp = ctx.competition
    folder = ctx.rundir.output(ctx.upstream["predict"])
    record = ctx.rundir.record(ctx.upstream["predict"])
    classes = record["classes"]
    # predict already decoded the labels; keep_default_na keeps a label such as 'NA' a string
    labels = pd.read_csv(folder / artifacts.TEST_TABLE, dtype=str, keep_default_na=False)["prediction"].tolist()
    (target,) = comp.target_cols
    frame = build_submission(comp.sample, comp.id_col, target, labels)
    validate_submission(frame, comp.sample, comp.id_col, {target: set(classes)})
    stem = f"{ctx.run_name}-{record['source']}-{record['metric']}={record['score']:.5f}"
    path, new = write_submission(frame, ctx.submissions, stem)
    ctx.log(f"{'wrote' if new else 'identical file already there:'} {path}")
    return {"submission": str(path), "score": record["score"], "metric": record["metric"],
            "source": record["source"]}
