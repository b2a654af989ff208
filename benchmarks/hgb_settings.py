"""Which gradient-boosting settings should the main table model start from, by table size?

`pip install -e ".[bench]" && python benchmarks/hgb_settings.py [TABLE ...]` (tables from
benchmarks/tables.py; the default: three under 10,000 rows and five of 28,000-327,000).
5-fold OOF outside the pipeline, the same stratified folds for every setting, one process at a
time on the machine's cores; each setting's OOF score and seconds a fold:

- `hgb`: the `hgb` plugin's defaults (LR 0.05, 300 iterations, 15 leaves, 10 rows a leaf,
  scikit-learn's early stopping from 10,000 rows);
- `sklearn`: scikit-learn's own defaults (LR 0.1, 100 iterations, 31 leaves, 20 rows a leaf),
  what a plain hand-written baseline uses;
- `hgb_31`: the plugin's with 31 leaves; `hgb_lr10`: the plugin's with LR 0.1.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from table_portfolio import _features, _scorer  # noqa: E402
from tables import load  # noqa: E402

PLUGIN = dict(learning_rate=0.05, max_iter=300, max_leaf_nodes=15, min_samples_leaf=10,
              categorical_features="from_dtype", early_stopping="auto", random_state=0)  # the hgb plugin's
SETTINGS = {
    "hgb": PLUGIN,
    "sklearn": dict(categorical_features="from_dtype", random_state=0),
    "hgb_31": {**PLUGIN, "max_leaf_nodes": 31},
    "hgb_lr10": {**PLUGIN, "learning_rate": 0.1},
}
DEFAULT = ["credit", "hpc", "attrition", "cps1988", "tv16", "movies", "fertility", "flights"]


def _top_categories(x, most: int = 250):
    """Each category column's ``most`` most frequent values, the rest missing (what the plugin's
    categories are: scikit-learn's native splits take at most 255)."""
    x = x.copy()
    for col in x.columns:
        if str(x[col].dtype) == "category" and len(x[col].cat.categories) > most:
            kept = x[col].value_counts().index[:most]
            x[col] = x[col].where(x[col].isin(kept)).cat.remove_unused_categories()
    return x


def _oof(x, y, folds, classifier: bool, settings: dict) -> tuple[np.ndarray, float]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    model = HistGradientBoostingClassifier if classifier else HistGradientBoostingRegressor
    oof = np.zeros((len(y), len(np.unique(y)) if classifier else 1))
    seconds = []
    for train, val in folds:
        began = time.perf_counter()
        fitted = model(**settings).fit(x.iloc[train], y[train])
        seconds.append(time.perf_counter() - began)
        oof[val] = fitted.predict_proba(x.iloc[val]) if classifier else fitted.predict(x.iloc[val])[:, None]
    return oof, float(np.mean(seconds))


def main(names: list[str]) -> None:
    from sklearn.model_selection import KFold, StratifiedKFold

    print("| table | rows | metric | " + " | ".join(SETTINGS) + " |")
    print("|---|---|---|" + "---|" * len(SETTINGS))
    for name in names or DEFAULT:
        table = load(name)
        x = _top_categories(_features(table.frame, table.target))
        y = table.frame[table.target].to_numpy()
        classes = len(np.unique(y)) if table.task == "classification" else 0
        score, classifier = _scorer(table.metric, classes)
        if classifier:
            y = np.unique(y, return_inverse=True)[1]
            folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(x, y))
        else:
            y = y.astype(float)
            folds = list(KFold(5, shuffle=True, random_state=0).split(x))
        cells = []
        for settings in SETTINGS.values():
            oof, seconds = _oof(x, y, folds, classifier, settings)
            cells.append(f"{score(y, oof):.4f} ({seconds:.1f} s)")
        print(f"| {name} | {len(y):,} | {table.metric} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
