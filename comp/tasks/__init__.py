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


def infer_task_kind(targets: pd.DataFrame, named: tuple[str, ...] | list[str] = ()) -> str:
    """The task kind ``infer_task`` reads from the target column(s)."""
    return infer_task(targets, named)[0]


def infer_task(targets: pd.DataFrame, named: tuple[str, ...] | list[str] = ()) -> tuple[str, str]:
    """Guess the task kind from the train target column(s), read as strings, and the metrics a
    description names (``named``, most likely first); return it with the evidence, in words.

    Several 0/1 columns, or space-separated lists whose combinations outnumber the
    labels: multilabel. Short strings read character by character (``reads_as_characters``)
    where a description names exact match: sequence. Fractional numbers, or integers with
    more than 50 distinct values (and no leading zeros; at least 95% of the values numbers,
    so that a typo is reported by row instead of changing the kind): regression. Short
    strings read character by character of which a quarter of the rows hold values too rare
    to learn as classes, or strings with more distinct values than a classifier can learn
    (over 50 and over half the rows): sequence. Otherwise classification. comp.yaml's ``task`` settles any case this gets wrong.
    """
    if targets.shape[1] > 1:
        if targets.isin(["0", "1"]).all().all():
            return "multilabel", f"{targets.shape[1]} target columns of 0/1"
        raise DataError(f"{targets.shape[1]} target columns ({', '.join(targets.columns)}) that are not all "
                        "0/1 indicators; set task and target_columns in comp.yaml")
    values = targets.iloc[:, 0].dropna()
    if values.str.contains(" ").any() and _labels_combine(values):
        return "multilabel", "space-separated labels that combine"
    characters = reads_as_characters(values)
    if characters and named and named[0] == "exact_match":
        return "sequence", f"{characters}; the description names exact match"
    numbers = pd.to_numeric(values, errors="coerce")
    leading_zero = values.str.match(r"^0\d").any()  # '07' is a code or a string, not seven
    # A few non-numbers among numbers are typos in a numeric target: the task names their rows.
    if numbers.notna().mean() >= NUMERIC_SHARE and not leading_zero:
        numbers = numbers.dropna()
        if (numbers != numbers.round()).any():
            return "regression", "fractional numbers"
        if numbers.nunique() > MAX_INTEGER_CLASSES:
            return "regression", f"{numbers.nunique()} distinct whole numbers"
        return "classification", f"{numbers.nunique()} distinct whole numbers"
    rare = rare_share(values)
    if characters and rare >= RARE_SHARE:
        return "sequence", (f"{characters}; {rare:.0%} of the rows hold a value seen fewer than {RARE_ROWS} times, "
                            "too rare to learn as a class")
    if values.nunique() > max(MAX_INTEGER_CLASSES, len(values) / 2):
        return "sequence", f"{values.nunique()} distinct strings in {len(values)} rows, too many to learn as classes"
    return "classification", f"{values.nunique()} distinct labels"


# A class needs a row in each fold (split.folds, 5 by default) to be learnt and scored on every fold.
RARE_ROWS = 5
RARE_SHARE = 0.25  # this share of rows in rarer values: the strings are not classes
SEQUENCE_MAX_CHARS = 16  # a string read character by character is short (a street number, a plate)
SEQUENCE_MAX_SYMBOLS = 40  # ... over a small alphabet (digits, capitals)


def reads_as_characters(values: pd.Series) -> str:
    """What makes ``values`` a string of characters rather than a label, in words, or "":
    more than 50 distinct values, of varying length, at most 16 characters over at most 40
    symbols, without spaces (street numbers, licence plates, captchas). Fixed-length ids
    (a whale's 'w_f48451c') are labels, however rare."""
    values = values.dropna().astype(str)
    if values.empty or values.str.contains(r"\s").any() or values.nunique() <= MAX_INTEGER_CLASSES:
        return ""
    lengths = values.str.len()
    symbols = {ch for value in values.drop_duplicates() for ch in value}
    if lengths.max() > SEQUENCE_MAX_CHARS or len(symbols) > SEQUENCE_MAX_SYMBOLS or lengths.nunique() < 2:
        return ""
    return (f"{values.nunique()} distinct strings of {lengths.min()}-{lengths.max()} characters over "
            f"{len(symbols)} symbols")


def rare_share(values: pd.Series) -> float:
    """The share of rows whose value is seen fewer than ``RARE_ROWS`` times."""
    counts = values.value_counts()
    return float(counts[counts < RARE_ROWS].sum() / max(len(values), 1))


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
        installed = {info.name for info in METRICS.list()}
        found = metrics_named(root) if root else []
        named = [e for e in found if e.metric in installed and kind in _kinds(e.metric)]
        if named:
            name, evidence = named[0].metric, str(named[0])
        elif task.suggested_metric():
            name, evidence = task.suggested_metric(), probability
        else:
            name, evidence = task.default_metric, f"default for {kind}"
        reasons = [evidence] + ([probability] if probability and probability != evidence else [])
        unknown = [e for e in found if e.metric not in installed]
        if unknown and (not named or found.index(unknown[0]) < found.index(named[0])):
            reasons.append(f"{unknown[0]} names a metric no installed comp.metrics plugin computes: scored by "
                           f"{name} instead; add a plugin named {unknown[0].metric} or set metric in comp.yaml")
        notes.append(f"metric {name} ({'; '.join(reasons)})")
    task.use_metric(name, METRICS.load(name), evidence)
    return task


def _kinds(name: str) -> tuple[str, ...]:
    from comp.registry import METRICS

    return METRICS.load(name).kinds
