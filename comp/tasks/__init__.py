"""Task kinds: how targets are read and encoded, which head and loss a model gets, how it is scored."""
from __future__ import annotations

import pandas as pd

from comp.errors import ConfigError, DataError
from comp.tasks.classification import Classification
from comp.tasks.readonly import Multilabel, Regression, Sequence

TASKS = {"classification": Classification, "multilabel": Multilabel, "regression": Regression,
         "sequence": Sequence}

# Up to this many distinct integer values a target is read as class labels, not a number.
MAX_INTEGER_CLASSES = 50


def infer_task_kind(targets: pd.DataFrame) -> str:
    """Guess the task kind from the train target column(s), read as strings.

    Several 0/1 columns or space-separated lists: multilabel. Fractional numbers, or
    integers with more than 50 distinct values (and no leading zeros): regression. Strings
    with more distinct values than a classifier can learn (over 50 and over half the rows):
    sequence.
    Otherwise classification. comp.yaml's ``task`` settles any case this gets wrong.
    """
    if targets.shape[1] > 1:
        if targets.isin(["0", "1"]).all().all():
            return "multilabel"
        raise DataError(f"{targets.shape[1]} target columns ({', '.join(targets.columns)}) that are not all "
                        "0/1 indicators; set task and target_columns in comp.yaml")
    values = targets.iloc[:, 0].dropna()
    numbers = pd.to_numeric(values, errors="coerce")
    leading_zero = values.str.match(r"^0\d").any()  # '07' is a code or a string, not seven
    if numbers.notna().all() and not leading_zero:
        if (numbers != numbers.round()).any() or numbers.nunique() > MAX_INTEGER_CLASSES:
            return "regression"
        return "classification"
    if values.str.contains(" ").any():
        return "multilabel"
    if values.nunique() > max(MAX_INTEGER_CLASSES, len(values) / 2):
        return "sequence"
    return "classification"


def make_task(kind: str, targets: pd.DataFrame, metric: str | None):
    """Build the task object for ``kind`` from the train targets."""
    if kind not in TASKS:
        raise ConfigError(f"task={kind!r} is not supported; available: {', '.join(TASKS)}")
    return TASKS[kind].from_targets(targets, metric)
