"""Task kinds (entry-point group ``comp.tasks``) and the choice of the competition metric."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from comp.errors import ConfigError, DataError
from comp.tasks.base import Task, TaskSource
from comp.tasks.evidence import metrics_named

# Up to this many distinct integer values a target is read as class labels, not a number.
MAX_INTEGER_CLASSES = 50
NUMERIC_SHARE = 0.95  # a target whose values are at least this share numbers is numeric


def infer_task_kind(targets: pd.DataFrame) -> str:
    """Guess the task kind from the train target column(s), read as strings.

    Several 0/1 columns, or space-separated lists whose combinations outnumber the
    labels: multilabel. Fractional numbers, or
    integers with more than 50 distinct values (and no leading zeros; at least 95% of the
    values numbers, so that a typo is reported by row instead of changing the kind): regression. Strings
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
    # A few non-numbers among numbers are typos in a numeric target: the task names their rows.
    if numbers.notna().mean() >= NUMERIC_SHARE and not leading_zero:
        numbers = numbers.dropna()
        if (numbers != numbers.round()).any() or numbers.nunique() > MAX_INTEGER_CLASSES:
            return "regression"
        return "classification"
    if values.str.contains(" ").any() and _labels_combine(values):
        return "multilabel"
    if values.nunique() > max(MAX_INTEGER_CLASSES, len(values) / 2):
        return "sequence"
    return "classification"


def _labels_combine(values: pd.Series) -> bool:
    """Space-separated labels whose combinations outnumber the labels: tags ("clear water",
    "haze water road"), not class names that contain a space ("Sugar beet", "Fat Hen")."""
    distinct = values.drop_duplicates()
    vocabulary = {token for tokens in distinct.str.split() for token in tokens}
    return len(vocabulary) < len(distinct)


def task_class(kind: str) -> type[Task]:
    """The task kind's class from the ``comp.tasks`` entry points."""
    from comp.registry import TASKS

    if kind not in {p.name for p in TASKS.list()}:
        raise ConfigError(f"task={kind!r} is not a known task kind; available: "
                          f"{', '.join(p.name for p in TASKS.list())} (see `comp plugins`)")
    cls = TASKS.load(kind)
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        from comp.errors import PluginError

        raise PluginError(f"task plugin '{kind}' is not a subclass of comp.tasks.base.Task; {TASKS.info(kind).where}")
    return cls


def make_task(kind: str, source: TaskSource, metric: str | None = None, root: Path | None = None,
              notes: list[str] | None = None) -> Task:
    """Build the task of ``kind`` and settle its metric.

    The metric is, in order: ``metric`` (comp.yaml or metric=), a metric named in a
    description file in ``root``, what sample_submission implies (probabilities), the
    kind's default. What was inferred, with its evidence, is appended to ``notes``.
    """
    from comp.registry import METRICS

    task = task_class(kind).create(source)
    notes = notes if notes is not None else []
    probability = task.probability_evidence()
    if metric:
        name, evidence = metric, "set"
    else:
        named = [e for e in (metrics_named(root) if root else []) if kind in _kinds(e.metric)]
        if named:
            name, evidence = named[0].metric, str(named[0])
        elif task.suggested_metric():
            name, evidence = task.suggested_metric(), probability
        else:
            name, evidence = task.default_metric, f"default for {kind}"
        reasons = [evidence] + ([probability] if probability and probability != evidence else [])
        notes.append(f"metric {name} ({'; '.join(reasons)})")
    task.use_metric(name, METRICS.load(name), evidence)
    return task


def _kinds(name: str) -> tuple[str, ...]:
    from comp.registry import METRICS

    return METRICS.load(name).kinds
