"""Stage `submit`: submissions/<run>-<stage>-<metric>=<score>.csv, validated, never overwritten."""
from __future__ import annotations

import numpy as np

from comp import artifacts
from comp.context import StageContext
from comp.submission import copy_submission, validate_submission, write_submission

NAME = "submit"
HELP = "write the test predictions as a validated CSV in the format of sample_submission.csv"
CONFIG = ("paths.submissions", "submit")
TRAINS = False
# Until the budget's end.
TIME = None


def inputs(cfg, available, training=()) -> dict[str, str]:
    return {"predict": "predict"}


def validate(cfg, competition, task) -> None:
    from pathlib import Path

    from comp.errors import ConfigError

    import os

    if not cfg.submit.copy_to:
        return
    target = Path(cfg.submit.copy_to).expanduser()
    if target.is_dir():
        raise ConfigError(f"submit.copy_to={cfg.submit.copy_to!r} is a folder; name the file, e.g. "
                          f"submit.copy_to={Path(cfg.submit.copy_to) / 'submission.csv'}")
    folder = target.absolute().parent
    while not folder.exists():  # the nearest folder that exists must take the new ones
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"submit.copy_to={cfg.submit.copy_to!r}: {folder} is not a folder this user can write "
                          "to; name a file in a writable folder")


def run(ctx: StageContext) -> dict:
    comp, task = ctx.competition, ctx.task
    folder = ctx.rundir.output(ctx.upstream["predict"])
    record = ctx.rundir.record(ctx.upstream["predict"])
    predictions = np.load(folder / artifacts.TEST_PROBS)
    frame = task.submission(comp.sample, predictions, record.get("decoding", {}))
    validate_submission(frame, comp.sample, comp.id_col, task)
    stem = f"{ctx.run_name}-{record['source']}-{record['metric']}={record['score']:.5f}"
    path, new = write_submission(frame, ctx.submissions, stem)
    ctx.log(f"{'wrote' if new else 'identical file already there:'} {path} ({task.submission_format()})")
    if ctx.cfg.submit.copy_to:
        ctx.log(f"copied to {copy_submission(path, ctx.cfg.submit.copy_to)} (submit.copy_to)")
    se = record.get("score_se")
    if se is not None and np.isfinite(se):
        ctx.log(f"its OOF {record['metric']} {record['score']:.5f} +- {se:.5f} is honest (every choice made without "
                f"the rows it scores); with the choices scored on their own rows: {record['score_all_rows']:.5f}")
    return {"submission": str(path), "score": record["score"], "score_se": se, "metric": record["metric"],
            "source": record["source"]}
