"""File names that stages publish for the stages after them (the run directory contract),
and the reader of the one every stage needs: the folds."""
from __future__ import annotations

from pathlib import Path


PROVENANCE = "config.yaml"  # every stage and the run: the command, resolved config, seed, versions, git revision
FOLDS = "folds.csv"  # split: id, fold (-1: left out, e.g. an undecodable image)
DUPLICATES = "duplicates.csv"  # inspect: group, id, split (train/test), kind, label
OOF_PROBS = "oof.npy"  # training stages: float32 task predictions (n_train, ...) in train.csv order
OOF_TABLE = "oof.csv"  # training stages: id, fold, target, prediction (decoded strings)
DECODING = "decoding.json"  # training stages: decoding parameters fit on OOF (e.g. thresholds)
FAILED_FOLDS = "failed_folds.json"  # baseline: fold -> why its model failed; the run goes on without those folds
FOLD_DIR = "fold_{fold}"  # training stages: the fold model (model.keras or model.pkl), history, diagnostics
TEST_PROBS = "test_pred.npy"  # predict: float32 task predictions (n_test, ...) in sample_submission order
TEST_TABLE = "test_pred.csv"  # predict: id, prediction (decoded strings)
VARIANT_DIR = "variants/{name}"  # training stages: a named variant's own OOF artifacts and fold models


def read_folds(path: Path, ids):
    """Fold number of each of ``ids`` (train.csv's id column, in order; -1: in no fold) from
    split's ``folds.csv`` at ``path``."""
    import pandas as pd

    folds = pd.read_csv(path, dtype={"id": str}).set_index("id")["fold"]
    return folds.loc[ids].to_numpy()
