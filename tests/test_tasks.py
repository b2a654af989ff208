"""Each task kind's round trip: train strings -> encoded targets -> predictions -> decoded
strings and the submission file's exact content."""
import numpy as np
import pandas as pd
import pytest

from comp.errors import DataError
from comp.submission import validate_submission, write_submission
from comp.tasks import make_task
from comp.tasks.base import TaskSource


def _task(kind, train: dict, sample: dict, metric=None, settings=None):
    train, sample = pd.DataFrame(train), pd.DataFrame(sample)
    targets = train.drop(columns="id")
    source = TaskSource(targets, sample, "id", tuple(c for c in sample.columns if c != "id"), settings or {})
    return make_task(kind, source, metric), targets, sample


def _one_hot(codes, width):
    out = np.zeros((len(codes), width), np.float32)
    out[np.arange(len(codes)), codes] = 1
    return out


def _written(frame, sample, task, tmp_path) -> str:
    validate_submission(frame, sample, "id", task)
    path, _ = write_submission(frame, tmp_path, "s")
    return path.read_text()


def test_classification_keeps_leading_zeros_and_spaces(tmp_path):
    task, targets, sample = _task("classification", {"id": ["a", "b", "c", "d"], "city": ["007", "New York", "007", "10"]},
                                  {"id": ["x", "y", "z"], "city": ["007", "007", "007"]})
    y = task.encode(targets)
    assert task.decode(_one_hot(y, task.num_classes)) == ["007", "New York", "007", "10"]
    pred = _one_hot(np.array([1, 2, 0]), task.num_classes)  # classes sorted: 007, 10, New York
    frame = task.submission(sample, pred, {})
    assert _written(frame, sample, task, tmp_path) == "id,city\nx,10\ny,New York\nz,007\n"


def test_binary_probability_of_the_positive_class(tmp_path):
    task, targets, sample = _task("classification", {"id": list("abcd"), "sick": ["no", "yes", "no", "no"]},
                                  {"id": ["x", "y"], "sick": ["0.5", "0.5"]})
    assert task.classes == ("no", "yes") and task.metric_name == "roc_auc"
    frame = task.submission(sample, np.array([[0.75, 0.25], [0.1, 0.9]]), {})
    assert _written(frame, sample, task, tmp_path) == "id,sick\nx,0.25\ny,0.9\n"
    y = task.encode(targets)
    assert task.score(y, np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])) == 1.0


def test_positive_class_is_last_for_yes_and_set_by_comp_yaml():
    task, _, _ = _task("classification", {"id": list("abc"), "y": ["yes", "no", "no"]}, {"id": ["x"], "y": ["no"]})
    assert task.classes == ("no", "yes")
    task, _, _ = _task("classification", {"id": list("abc"), "y": ["B", "M", "B"]}, {"id": ["x"], "y": ["B"]},
                       settings={"positive_class": "B"})
    assert task.classes == ("M", "B")


def test_multilabel_lists_round_trip(tmp_path):
    task, targets, sample = _task("multilabel", {"id": list("abcd"), "tags": ["cat dog", "dog", "", "New_York"]},
                                  {"id": ["x", "y"], "tags": ["cat", "cat"]})
    y = task.encode(targets)
    assert task.labels == ("New_York", "cat", "dog")
    assert task.decode(y) == ["cat dog", "dog", "", "New_York"]
    decoding = {"thresholds": {"New_York": 0.5, "cat": 0.3, "dog": 0.7}}
    frame = task.submission(sample, np.array([[0.1, 0.35, 0.65], [0.6, 0.2, 0.8]]), decoding)
    assert _written(frame, sample, task, tmp_path) == "id,tags\nx,cat\ny,New_York dog\n"


def test_multilabel_indicator_and_probability_columns(tmp_path):
    train = {"id": list("abcd"), "cat": ["1", "0", "1", "0"], "dog": ["0", "1", "1", "0"]}
    task, _, sample = _task("multilabel", train, {"id": ["x", "y"], "cat": ["0", "0"], "dog": ["0", "0"]})
    assert task.metric_name == "f1_micro"
    frame = task.submission(sample, np.array([[0.9, 0.2], [0.4, 0.6]]), {})
    assert _written(frame, sample, task, tmp_path) == "id,cat,dog\nx,1,0\ny,0,1\n"
    task, _, sample = _task("multilabel", train, {"id": ["x", "y"], "cat": ["0.5", "0.5"], "dog": ["0.5", "0.5"]})
    assert task.metric_name == "roc_auc"
    frame = task.submission(sample, np.array([[0.9, 0.2], [0.4, 0.6]]), {})
    assert _written(frame, sample, tmp_path=tmp_path / "p", task=task) == "id,cat,dog\nx,0.9,0.2\ny,0.4,0.6\n"


def test_multilabel_thresholds_beat_one_half_on_skewed_scores():
    task, targets, _ = _task("multilabel", {"id": list("abcdef"), "t": ["a", "a", "", "", "a", ""]},
                             {"id": ["x"], "t": ["a"]})
    y = task.encode(targets)
    p = np.array([[0.4], [0.35], [0.1], [0.12], [0.45], [0.05]], np.float32)  # positives all below 0.5
    folds = np.array([0, 1, 0, 1, 0, 1])
    decoding, honest = task.fit_decoding(y, p, folds)  # each fold's threshold comes from the other fold
    assert 0.12 < decoding["thresholds"]["a"] <= 0.35 and honest == 1.0
    assert task.score(y, p) == 0.0  # at 0.5 nothing is predicted


def test_secondary_metrics_use_thresholds_fit_on_the_other_folds():
    """Thresholds fit on all rows separate every row here (f1 1.0); fit on the other folds they
    cannot, because fold 0's positives sit where the other folds' negatives are."""
    task, targets, _ = _task("multilabel", {"id": [str(i) for i in range(12)], "t": ["a", ""] * 6},
                             {"id": ["x"], "t": ["a"]})
    y = task.encode(targets)
    p = np.where(y[:, 0] == 1, 0.9, 0.1).astype(np.float32).reshape(-1, 1)
    folds = np.repeat([0, 1, 2], 4)
    p[folds == 0] = np.where(y[folds == 0, 0] == 1, 0.35, 0.25).reshape(-1, 1)
    decoding, honest = task.fit_decoding(y, p, folds)
    in_sample = task.scores(y, p, decoding)
    assert in_sample["f1_micro"] == 1.0 and in_sample["f1_macro"] == 1.0 and in_sample["exact_match"] == 1.0
    scores = task.honest_scores(y, p, folds)
    assert scores["f1_micro"] == honest < 1.0
    assert scores["f1_macro"] < 1.0 and scores["exact_match"] == 10 / 12  # fold 0's two positives missed
    assert scores["roc_auc"] == in_sample["roc_auc"]  # a ranking metric has no threshold to flatter
    per_fold = task.fold_decodings(y, p, folds)
    assert task.score(y[folds == 0], p[folds == 0], per_fold[0]) < 1.0


def _naive_bayes_oof(data, metric):
    """5-fold OOF probabilities of Gaussian naive Bayes on a bundled dataset: real
    predictions, and famously overconfident ones."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.naive_bayes import GaussianNB

    x, labels = data(return_X_y=True)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    fold_of = np.zeros(len(labels), int)
    for k, (_, held) in enumerate(folds.split(x, labels)):
        fold_of[held] = k
    p = cross_val_predict(GaussianNB(), x, labels, cv=folds, method="predict_proba")
    names = [str(v) for v in labels]
    task, targets, sample = _task("classification", {"id": [str(i) for i in range(len(names))], "y": names},
                                  {"id": ["x", "z"], "y": ["0.5", "0.5"]} if len(set(names)) == 2 else
                                  {"id": ["x", "z"], "y": [names[0], names[1]]}, metric=metric)
    return task, task.encode(targets), p, fold_of, sample


@pytest.mark.parametrize("dataset", ["breast_cancer", "wine"])
def test_log_loss_probabilities_get_a_temperature_fit_on_the_other_folds(dataset, tmp_path):
    """Overconfident OOF probabilities: a temperature chosen on the other folds lowers the log
    loss of every fold's rows, the published score is that cross-fitted one, the submission
    carries the calibrated probabilities and the predicted labels do not move."""
    from sklearn import datasets
    from sklearn.metrics import log_loss

    task, y, p, fold_of, sample = _naive_bayes_oof(getattr(datasets, f"load_{dataset}"), "logloss")
    decoding, honest = task.fit_decoding(y, p, fold_of)
    raw = task.score(y, p)
    assert decoding["temperature"] > 1.5  # softer: naive Bayes is far too sure
    assert honest < 0.85 * raw  # measured: breast cancer 0.602 -> 0.149, wine 0.100 -> 0.079
    per_fold = task.fold_decodings(y, p, fold_of)
    cross_fitted = np.concatenate([task.metric_inputs(y[fold_of == k], p[fold_of == k], per_fold[k], "scores")[1]
                                   for k in range(5)])
    order = np.concatenate([np.flatnonzero(fold_of == k) for k in range(5)])
    assert honest == pytest.approx(log_loss(y[order], cross_fitted))
    assert task.honest_scores(y, p, fold_of)["logloss"] == pytest.approx(honest)
    assert task.honest_scores(y, p, fold_of)["accuracy"] == task.score(y, p, metric=("accuracy", _accuracy()))
    submitted = task.submission(sample, p[:2], decoding)["y"]
    calibrated = task.metric_inputs(y[:2], p[:2], decoding, "scores")[1]
    assert (calibrated.argmax(1) == p[:2].argmax(1)).all()
    if len(task.classes) == 2:  # P(positive class) in the file: the calibrated one
        assert np.allclose(submitted.to_numpy(dtype=float), calibrated[:, 1]) and not np.allclose(calibrated, p[:2])
    else:  # labels in the file: unmoved
        assert list(submitted) == task.decode(p[:2])


def test_multilabel_log_loss_gets_one_temperature_and_keeps_its_labels(tmp_path):
    """Per-label naive Bayes on the 8x8 digits' tags (even, large): far too sure; one
    temperature fit on the other folds lowers the mean binary log loss, and the 0.5
    decisions stay where they were."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.naive_bayes import GaussianNB

    x, digit = load_digits(return_X_y=True)
    tags = np.stack([digit % 2 == 0, digit >= 5], axis=1).astype(int)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    fold_of = np.zeros(len(digit), int)
    for k, (_, held) in enumerate(folds.split(x, digit)):
        fold_of[held] = k
    p = np.stack([cross_val_predict(GaussianNB(), x, tags[:, j], cv=folds, method="predict_proba")[:, 1]
                  for j in range(2)], axis=1)
    names = [" ".join(t for t, on in zip(("even", "large"), row) if on) for row in tags]
    task, targets, sample = _task("multilabel", {"id": [str(i) for i in range(len(names))], "t": names},
                                  {"id": ["x", "z"], "t": ["even", "large"]}, metric="logloss")
    y = task.encode(targets)
    decoding, honest = task.fit_decoding(y, p, fold_of)
    raw = task.score(y, p)
    assert decoding["temperature"] > 1.5 and honest < 0.6 * raw  # measured: 9.10 -> 0.65 (T 45: its probabilities are 0 or 1)
    assert task.honest_scores(y, p, fold_of)["logloss"] == pytest.approx(honest)
    assert task.decode(p[:50], decoding) == task.decode(p[:50])


def _accuracy():
    from comp.registry import METRICS

    return METRICS.load("accuracy")


def test_a_temperature_is_not_fit_for_label_metrics_nor_kept_when_it_does_not_pay():
    from sklearn.datasets import load_breast_cancer

    task, y, p, fold_of, _ = _naive_bayes_oof(load_breast_cancer, "accuracy")
    assert task.fit_decoding(y, p, fold_of) == ({}, task.score(y, p))
    task, y, p, fold_of, _ = _naive_bayes_oof(load_breast_cancer, "roc_auc")
    decoding, honest = task.fit_decoding(y, p, fold_of)  # a binary AUC ranks: no temperature changes it
    assert decoding == {} and honest == task.score(y, p) and task.fold_decodings(y, p, fold_of) == {}


def test_a_fold_model_starts_at_its_own_training_rows_priors():
    task, targets, _ = _task("classification", {"id": list("abcdef"), "k": ["a", "a", "a", "a", "b", "b"]},
                             {"id": ["x"], "k": ["a"]})
    y = task.encode(targets)
    assert task.priors == (4 / 6, 2 / 6)
    fold = task.for_fold(y[:4])  # a fold whose training rows hold only class a
    assert fold.priors[0] > 0.85 and fold.priors[1] > 0  # never log(0)
    assert task.priors == (4 / 6, 2 / 6)  # the task itself is unchanged
    task, targets, _ = _task("regression", {"id": list("abcd"), "v": ["1", "2", "3", "10"]}, {"id": ["x"], "v": ["0"]})
    y = task.encode(targets)
    assert task.for_fold(y[:3]).offset == float(np.mean(y[:3])) < 0 and task.offset == 0.0


def test_regression_round_trip_in_the_target_units(tmp_path):
    task, targets, sample = _task("regression", {"id": list("abcd"), "price": ["10", "20", "30", "40.5"]},
                                  {"id": ["x", "y"], "price": ["0", "0"]})
    y = task.encode(targets)
    assert abs(float(y.mean())) < 1e-6 and abs(float(y.std()) - 1) < 1e-6  # standardised for training
    np.testing.assert_allclose(task.predictions(y).ravel(), [10, 20, 30, 40.5], rtol=1e-6)
    frame = task.submission(sample, np.array([[12.5], [33.25]], np.float32), {})
    assert _written(frame, sample, task, tmp_path) == "id,price\nx,12.5\ny,33.25\n"
    assert task.score(y, task.predictions(y)) == pytest.approx(0.0, abs=1e-5)


def test_rmsle_learns_log_targets_and_refuses_negatives():
    task, targets, _ = _task("regression", {"id": list("abc"), "n": ["1", "10", "100"]}, {"id": ["x"], "n": ["0"]},
                             metric="rmsle")
    np.testing.assert_allclose(task.predictions(task.encode(targets)).ravel(), [1, 10, 100], rtol=1e-5)
    from comp.errors import ConfigError

    with pytest.raises(ConfigError, match="metric=rmsle needs targets >= 0"):
        _task("regression", {"id": list("ab"), "n": ["-1", "3"]}, {"id": ["x"], "n": ["0"]}, metric="rmsle")


def test_sequence_round_trip_with_leading_zeros(tmp_path):
    task, targets, sample = _task("sequence", {"id": list("abcd"), "number": ["007", "12", "5", "0430"]},
                                  {"id": ["x", "y"], "number": ["1", "1"]})
    assert task.max_len == 4 and task.alphabet == ("0", "1", "2", "3", "4", "5", "7")
    y = task.encode(targets)
    assert y[0].tolist() == [0, 0, 6, task.blank]
    probs = np.stack([_one_hot(row, task.blank + 1) for row in y])
    assert task.decode(probs) == ["007", "12", "5", "0430"]
    assert task.score(y, probs) == 1.0
    # A character predicted after a blank is not read: the first blank ends the string.
    gap = np.stack([_one_hot(np.array(row), task.blank + 1) for row in ([2, task.blank, 1, 3], [1, 1, task.blank, 0])])
    assert task.decode(gap) == ["2", "11"]
    assert task.score(y[:2], gap) == 0.0
    frame = task.submission(sample, probs[[3, 0]], {})
    assert _written(frame, sample, task, tmp_path) == "id,number\nx,0430\ny,007\n"


def test_a_submission_value_the_task_cannot_mean_is_refused():
    task, _, sample = _task("sequence", {"id": list("ab"), "n": ["12", "3"]}, {"id": ["x"], "n": ["1"]})
    with pytest.raises(DataError, match="row 2: n='19' is not a string of 1-2 characters seen in train.csv"):
        validate_submission(sample.assign(n=["19"]), sample, "id", task)


def test_label_smoothing_auto_is_the_kinds_default_and_a_number_is_kept():
    from comp.config import load_config
    from comp.stages.training import train_spec

    single, _, _ = _task("classification", {"id": list("abc"), "y": ["a", "b", "a"]}, {"id": ["x"], "y": ["a"]})
    value, _, _ = _task("regression", {"id": list("abc"), "n": ["1", "2", "3"]}, {"id": ["x"], "n": ["0"]})
    cfg = load_config()
    assert cfg.train.label_smoothing == "auto"
    # what the training library is given: a number, 0.1 where there are labels, 0 where there are none
    assert train_spec(cfg, 1e-3, single).label_smoothing == 0.1
    assert train_spec(cfg, 1e-3, value).label_smoothing == 0.0
    assert train_spec(load_config(["train.label_smoothing=0"]), 1e-3, single).label_smoothing == 0.0
    assert train_spec(load_config(["train.label_smoothing=0.25"]), 1e-3, single).label_smoothing == 0.25
    from comp.errors import ConfigError

    with pytest.raises(ConfigError, match="train.label_smoothing"):
        load_config(["train.label_smoothing=0.7"])
