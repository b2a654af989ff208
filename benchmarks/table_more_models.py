"""What could a table run's unused time buy? Bagged gradient boosting and other boosting
libraries, each alone and blended with the default portfolio (issue 23).

`pip install -e ".[bench]" && python benchmarks/table_more_models.py [bagging] [boosters] [configs] [stacking] [TABLE ...]`
(tables from benchmarks/tables.py; `boosters` needs `pip install lightgbm xgboost catboost`).
5-fold OOF, outside the pipeline, with the same stratified folds for every model:

- `bagging`: comp's HistGradientBoosting defaults alone (`hgb`); the mean of 5 fitted on 80%
  row subsamples with new seeds (`hgb_rows5`); the mean of 5 with 70% of the features per
  split (`hgb_feat5`); a slower schedule, LR 0.02 and 750 trees (`hgb_slow`).
- `boosters`: LightGBM, XGBoost (400 trees, LR 0.05, 80% rows and columns) and CatBoost (its
  defaults, native categories) beside `hgb`.
- `configs`: other settings of the same HistGradientBoosting, each fitted until its own early
  stopping (10% of the fold's rows held out, 30 rounds' patience): `hgb_long` (31 leaves,
  LR 0.05), `hgb_wide` (127 leaves, LR 0.03, 80% of the features per split), `hgb_shallow`
  (8 leaves, LR 0.1). Each is blended in place of `hgb` and beside it.
- `stacking`: a level-2 HistGradientBoosting (the `hgb` settings) on the level-1 models' OOF
  predictions (hgb, extra trees, linear, and hgb_long with `configs`), alone and with the
  raw features beside them (AutoGluon's stacking), each fold's rows predicted by a stacker
  fit on the other folds; alone and blended with the level-1 models.

Each is then blended (``comp.blending.nested_selection``, each fold's weights chosen on the
others) with extra trees and the linear model, the rest of `baseline.variants=auto`: a model
earns its time only if that blend improves.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from table_portfolio import _Role, _features, _scorer  # noqa: E402
from tables import SOURCES, load  # noqa: E402

PORTFOLIO = ("extra_trees", "linear")  # what the default blends gradient boosting with


def _hgb(classifier: bool, **changes):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    settings = dict(learning_rate=0.05, max_iter=300, max_leaf_nodes=15, min_samples_leaf=10,
                    categorical_features="from_dtype", early_stopping="auto", random_state=0)  # the hgb plugin's
    return (HistGradientBoostingClassifier if classifier else HistGradientBoostingRegressor)(**{**settings, **changes})


def _booster(kind: str, classifier: bool, x):
    """(an unfitted model, the features it reads)."""
    if kind == "lgbm":
        import lightgbm as lgb

        return (lgb.LGBMClassifier if classifier else lgb.LGBMRegressor)(
            n_estimators=400, learning_rate=0.05, num_leaves=31, subsample=0.8, subsample_freq=1,
            colsample_bytree=0.8, verbose=-1, n_jobs=2, random_state=0), x
    if kind == "xgb":
        import xgboost as xgb

        return (xgb.XGBClassifier if classifier else xgb.XGBRegressor)(
            n_estimators=400, learning_rate=0.05, max_depth=6, subsample=0.8, colsample_bytree=0.8,
            tree_method="hist", enable_categorical=True, n_jobs=2, random_state=0), x
    import catboost as cb

    cats = [i for i, c in enumerate(x.columns) if str(x[c].dtype) == "category"]
    strings = x.copy()
    for i in cats:
        strings[x.columns[i]] = x[x.columns[i]].astype(object).fillna("(missing)").astype(str)  # pandas 3 keeps NaN
    return (cb.CatBoostClassifier if classifier else cb.CatBoostRegressor)(
        iterations=1000, verbose=0, thread_count=2, random_seed=0, cat_features=cats,
        allow_writing_files=False), strings


def _arms(which: list[str]) -> dict:
    """name -> (classifier, x) -> list of (unfitted model, features, row share)."""
    arms = {"hgb": lambda c, x: [(_hgb(c), x, 1.0)]}
    if "bagging" in which:
        arms["hgb_rows5"] = lambda c, x: [(_hgb(c, random_state=r), x, 0.8) for r in range(5)]
        arms["hgb_feat5"] = lambda c, x: [(_hgb(c, max_features=0.7, random_state=r), x, 1.0) for r in range(5)]
        arms["hgb_slow"] = lambda c, x: [(_hgb(c, learning_rate=0.02, max_iter=750), x, 1.0)]
    if "configs" in which:
        stop = dict(max_iter=3000, early_stopping=True, n_iter_no_change=30, validation_fraction=0.1)
        arms["hgb_long"] = lambda c, x: [(_hgb(c, **stop, learning_rate=0.05, max_leaf_nodes=31,
                                               min_samples_leaf=20), x, 1.0)]
        arms["hgb_wide"] = lambda c, x: [(_hgb(c, **stop, learning_rate=0.03, max_leaf_nodes=127,
                                               min_samples_leaf=5, l2_regularization=1.0, max_features=0.8), x, 1.0)]
        arms["hgb_shallow"] = lambda c, x: [(_hgb(c, **stop, learning_rate=0.1, max_leaf_nodes=8,
                                                  min_samples_leaf=40), x, 1.0)]
    if "boosters" in which:
        for kind in ("lgbm", "xgb", "cat"):
            arms[kind] = lambda c, x, k=kind: [(*_booster(k, c, x), 1.0)]
    return arms


def main(argv: list[str]) -> None:
    import keras_tuner as kt
    from sklearn.model_selection import KFold, StratifiedKFold

    from comp.blending import nested_selection
    from comp.objective import Objective
    from comp.registry import MODELS

    which = [a for a in argv if a in ("bagging", "boosters", "configs", "stacking")] or ["bagging"]
    names = [a for a in argv if a in SOURCES] or list(SOURCES)
    arms = _arms(which)
    for name in names:
        table = load(name)
        x = _features(table.frame, table.target)
        classifier = table.task == "classification"
        if classifier:
            classes = sorted(table.frame[table.target].unique())
            y = table.frame[table.target].map({c: i for i, c in enumerate(classes)}).to_numpy()
            splitter = StratifiedKFold(5, shuffle=True, random_state=0)
        else:
            classes, y = [], table.frame[table.target].to_numpy(dtype=float)
            splitter = KFold(5, shuffle=True, random_state=0)
        fold_of = np.zeros(len(y), dtype=int)
        for k, (_, val) in enumerate(splitter.split(x, y)):
            fold_of[val] = k
        score, higher = _scorer(table.metric, len(classes))
        width = max(len(classes), 1)
        role = _Role("classifier" if classifier else "regressor")
        arms_here = {**arms, **{m: (lambda c, x, m=m: [(MODELS.load(m).build(None, role, kt.HyperParameters()), x,
                                                         1.0)]) for m in PORTFOLIO}}
        oof, seconds = {}, {}
        for arm, make in arms_here.items():
            pred, began = np.zeros((len(y), width)), time.monotonic()
            for k in range(5):
                fit, val = np.flatnonzero(fold_of != k), fold_of == k
                outs = []
                for r, (model, features, share) in enumerate(make(classifier, x)):
                    rows = fit if share >= 1 else np.random.default_rng(r).choice(fit, int(share * len(fit)),
                                                                                 replace=False)
                    model.fit(features.iloc[rows], y[rows])
                    outs.append(model.predict_proba(features[val]) if classifier
                                else np.asarray(model.predict(features[val])).reshape(-1, 1))
                pred[val] = np.mean(outs, axis=0)
            oof[arm], seconds[arm] = pred, time.monotonic() - began

        def blended(members):
            out, _ = nested_selection([oof[m].astype(np.float32) for m in members], fold_of,
                                      lambda rows, p: score(y[rows], p), Objective(higher), 25)
            return score(y, out)

        if "stacking" in which:
            _stacking(x, y, fold_of, oof, classifier, score, blended)
            continue
        for arm in arms:
            also = (f", beside hgb {blended(['hgb', arm, *PORTFOLIO]):.4f}"
                    if arm.startswith("hgb_") and "configs" in which else "")
            print(f"{name} ({table.metric}) {arm}: alone {score(y, oof[arm]):.4f} ({seconds[arm]:.1f}s for 5 folds), "
                  f"blended with {' and '.join(PORTFOLIO)} {blended([arm, *PORTFOLIO]):.4f}{also}", flush=True)


def _stacking(x, y, fold_of, oof, classifier, score, blended) -> None:
    """Level-2 models on the level-1 OOF predictions (each fold's rows from a level-2 model fit
    on the other folds), with and without the raw features, against the level-1 blend."""
    level_one = [m for m in oof if m == "hgb" or m in PORTFOLIO or m == "hgb_long"]
    columns = np.concatenate([oof[m][:, 1:] if classifier and oof[m].shape[1] == 2 else oof[m]
                              for m in level_one], axis=1)
    stacked = {}
    for arm, inputs in (("gbm_on_oof", None), ("gbm_on_oof_and_raw", x)):
        features = pd.DataFrame(columns, columns=[f"l1_{i}" for i in range(columns.shape[1])])
        if inputs is not None:
            features = pd.concat([inputs.reset_index(drop=True), features], axis=1)
        pred = np.zeros_like(oof["hgb"])
        for k in range(5):
            fit, val = np.flatnonzero(fold_of != k), fold_of == k
            model = _hgb(classifier).fit(features.iloc[fit], y[fit])
            pred[val] = (model.predict_proba(features[val]) if classifier
                         else np.asarray(model.predict(features[val])).reshape(-1, 1))
        oof[arm] = stacked[arm] = pred
    line = f"level-1 blend {blended(level_one):.4f}"
    for arm in stacked:
        line += f"; {arm} alone {score(y, oof[arm]):.4f}, blended with level 1 {blended([*level_one, arm]):.4f}"
    print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
