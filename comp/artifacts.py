"""File names that stages publish for the stages after them (the run directory contract)."""

FOLDS = "folds.csv"  # split: id, fold (-1: left out, e.g. an undecodable image)
DUPLICATES = "duplicates.csv"  # inspect: group, id, split (train/test), kind, label
OOF_PROBS = "oof.npy"  # training stages: float32 (n_train, n_outputs) in train.csv order
OOF_TABLE = "oof.csv"  # training stages: id, fold, target, prediction
FOLD_MODEL = "fold_{fold}/model.keras"  # training stages: best weights of fold k
TEST_PROBS = "test_pred.npy"  # predict: float32 (n_test, n_outputs) in sample_submission order
TEST_TABLE = "test_pred.csv"  # predict: id, prediction
