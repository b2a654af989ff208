"""Task kinds: how targets are encoded, which head and loss a model gets, how it is scored."""
from __future__ import annotations

import pandas as pd

from comp.errors import ConfigError, DataError
from comp.tasks.classification import Classification

TASKS = {"classification": Classification}


def infer_task_kind(targets: pd.DataFrame) -> str:
    """Guess the task kind from the train target column(s) (read as strings)."""
    if targets.shape[1] != 1:
        raise DataError(
            f"{targets.shape[1]} target columns ({', '.join(targets.columns)}): several "
            "target columns are not supported yet; name one with target_columns in comp.yaml"
        )
    values = targets.iloc[:, 0]
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all() and (numbers != numbers.round()).any():
        raise DataError(
            f"target column '{targets.columns[0]}' holds fractional numbers (regression), "
            "which this version does not support yet; set task= in comp.yaml if this is wrong"
        )
    return "classification"


def make_task(kind: str, targets: pd.DataFrame, metric: str | None):
    """Build the task object for ``kind`` from the train targets."""
    if kind not in TASKS:
        raise ConfigError(f"task={kind!r} is not supported; available: {', '.join(TASKS)}")
    return TASKS[kind].from_targets(targets, metric)
