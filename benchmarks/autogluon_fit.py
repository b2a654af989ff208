"""Fit AutoGluon on one competition folder and write its submission: run by the AutoGluon
environment's Python (see benchmarks/autogluon_runs.py), never imported by comp.

`python autogluon_fit.py FOLDER TARGET METRIC PRESET SECONDS OUT.csv`: trains
``TabularPredictor(presets=PRESET, time_limit=SECONDS)`` on FOLDER/train.csv (the id column
dropped) under the competition's metric, predicts FOLDER/test.csv in the benchmark's
submission format (P(1) for ROC-AUC, the label for accuracy, the value for RMSE) and prints
one JSON line: the fit's and prediction's seconds and AutoGluon's own validation score of
the model it predicts with (its estimate of the test score, to set beside comp's OOF).
"""
from __future__ import annotations

import json
import sys
import tempfile
import time

import pandas as pd
from autogluon.tabular import TabularPredictor

METRICS = {"roc_auc": "roc_auc", "accuracy": "accuracy", "rmse": "root_mean_squared_error"}


def main(folder: str, target: str, metric: str, preset: str, seconds: str, out: str) -> None:
    train, test = pd.read_csv(f"{folder}/train.csv"), pd.read_csv(f"{folder}/test.csv")
    problem = "regression" if metric == "rmse" else None
    with tempfile.TemporaryDirectory() as models:
        began = time.monotonic()
        predictor = TabularPredictor(label=target, eval_metric=METRICS[metric], problem_type=problem, path=models,
                                     verbosity=0).fit(train.drop(columns=["id"]), presets=preset,
                                                      time_limit=float(seconds))
        fitted = time.monotonic() - began
        features = test.drop(columns=["id"])
        if metric == "roc_auc":
            pred = predictor.predict_proba(features)[1]
        else:
            pred = predictor.predict(features)
        predicted = time.monotonic() - began - fitted
        board = predictor.leaderboard(silent=True)
        best = board[board["model"] == predictor.model_best].iloc[0]
        # AutoGluon reports every metric as higher-is-better (RMSE negated)
        validation = abs(float(best["score_val"]))
        models_fitted, best_name = len(board), predictor.model_best
    pd.DataFrame({"id": test["id"], target: pred.to_numpy()}).to_csv(out, index=False)
    print(json.dumps({"fit_s": round(fitted, 1), "predict_s": round(predicted, 1), "validation": validation,
                      "best": best_name, "models": models_fitted}))


if __name__ == "__main__":
    main(*sys.argv[1:])
