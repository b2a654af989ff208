"""The ensemble's choices scored honestly: on labels that are noise, the published number sits
at chance however many candidates were compared, while the all-rows choice flatters itself."""
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from comp.objective import Objective
from comp.selection import Option, Scoring, choose, nested
from comp.significance import standard_error


def _accuracy(y):
    return lambda idx, pred: float(np.mean(np.argmax(pred, axis=1) == y[idx]))


def _folds(y, k=5):
    fold_of = np.zeros(len(y), dtype=int)
    for i, (_, val) in enumerate(StratifiedKFold(k, shuffle=True, random_state=0).split(y, y)):
        fold_of[val] = i
    return fold_of


def _scores(y, fold_of, pred):
    folds = [float(np.mean(np.argmax(pred[fold_of == k], 1) == y[fold_of == k])) for k in range(5)]
    return float(np.mean(np.argmax(pred, 1) == y)), standard_error(folds)


def test_on_noise_labels_the_nested_score_is_at_chance_and_the_all_rows_one_is_not():
    rng = np.random.default_rng(1)
    y = rng.permutation(np.repeat(np.arange(4), 250))  # balanced labels nothing can predict
    fold_of = _folds(y)
    options = []
    for i in range(150):  # candidates, each with views and a probe view: many choices to flatter
        plain = rng.dirichlet(np.ones(4), len(y)).astype(np.float32)
        options.append(Option(f"c{i}", plain, rng.dirichlet(np.ones(4), len(y)).astype(np.float32), 3,
                              {"flip": rng.dirichlet(np.ones(4), len(y)).astype(np.float32)}))
    scoring = Scoring(fold_of, _accuracy(y), Objective(True), rounds=10)
    rows = np.flatnonzero(fold_of >= 0)
    chance = float(np.bincount(y).max() / len(y))  # the majority class: the best a label-blind model does
    se = np.sqrt(chance * (1 - chance) / len(y))
    best_single = max(choose(options, rows, scoring).singles)  # what the ensemble published before
    honest, _ = _scores(y, fold_of, nested(options, scoring)[0])
    assert best_single > chance + 2 * se, (best_single, chance, se)
    assert abs(honest - chance) < 2 * se, (honest, chance, se)


def test_a_real_candidate_is_chosen_in_every_fold_and_its_nested_score_is_its_own():
    x, y = load_digits(return_X_y=True)
    fold_of = _folds(y)
    real = cross_val_predict(LogisticRegression(max_iter=2000), x / 16, y, groups=None,
                             cv=[(np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)) for k in range(5)],
                             method="predict_proba").astype(np.float32)
    rng = np.random.default_rng(1)
    options = [Option(f"noise{i}", rng.dirichlet(np.ones(10), len(y)).astype(np.float32)) for i in range(5)]
    options.insert(2, Option("logistic", real))
    scoring = Scoring(fold_of, _accuracy(y), Objective(True), rounds=5)
    honest_oof, choices = nested(options, scoring)
    assert all(c.used == "single" and c.single == 2 for c in choices)
    assert np.allclose(honest_oof, real)


def test_choices_on_a_sample_keep_each_folds_share_and_predict_every_row():
    """On a large table the ensemble chooses on a sample of the OOF rows (comp.selection's
    ``sample_rows``): each fold keeps its share, and every row still gets the nested choice."""
    from comp.selection import sample_rows

    x, y = load_digits(return_X_y=True)
    fold_of = _folds(y)
    rows = np.flatnonzero(fold_of >= 0)
    sample = sample_rows(rows, fold_of, 600, seed=0)
    assert len(sample) == 600 and np.all(np.diff(sample) > 0)
    assert np.allclose(np.bincount(fold_of[sample]) / 600, np.bincount(fold_of) / len(y), atol=0.002)
    assert np.array_equal(sample_rows(rows, fold_of, 600, seed=0), sample)
    assert np.array_equal(sample_rows(rows, fold_of, len(rows), seed=0), rows)
    real = cross_val_predict(LogisticRegression(max_iter=2000), x / 16, y,
                             cv=[(np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)) for k in range(5)],
                             method="predict_proba").astype(np.float32)
    rng = np.random.default_rng(1)
    options = [Option(f"noise{i}", rng.dirichlet(np.ones(10), len(y)).astype(np.float32)) for i in range(3)]
    options.insert(1, Option("logistic", real))
    honest_oof, choices = nested(options, Scoring(fold_of, _accuracy(y), Objective(True), rounds=5), sample)
    assert all(c.single == 1 for c in choices) and np.allclose(honest_oof, real)


def test_the_sample_is_as_large_as_the_time_holds():
    """``choice_size``: every row when the metric calls fit the seconds, else the rows that do
    (from a call's fixed and per-row cost), never fewer than MIN_CHOICE_ROWS, and then fewer
    greedy rounds, never fewer than MIN_ROUNDS."""
    from comp.selection import MIN_CHOICE_ROWS, MIN_ROUNDS, choice_size, metric_calls

    options = [Option(f"c{i}", np.zeros((1, 2), np.float32)) for i in range(4)]
    calls = metric_calls(options, 5, 25)
    assert 3_000 < calls < 4_000  # the count seen on flights' four candidates: 3,678 calls
    timed = (0.0015, 5_000, 0.0465, 262_000)  # ROC-AUC's calls on flights: 1.5 ms and 46 ms
    per_row, fixed = (0.0465 - 0.0015) / 257_000, 0.0015 - 5_000 * (0.0465 - 0.0015) / 257_000
    assert choice_size(262_000, options, 5, 25, 1e4, timed) == (262_000, 25)
    size, rounds = choice_size(262_000, options, 5, 25, 30.0, timed)
    assert MIN_CHOICE_ROWS < size < 262_000 and rounds == 25 and calls * (fixed + per_row * size) <= 30.0 * 1.001
    size, rounds = choice_size(262_000, options, 5, 25, 3.0, timed)
    assert size == MIN_CHOICE_ROWS and MIN_ROUNDS < rounds < 25
    assert metric_calls(options, 5, rounds) * (fixed + per_row * size) <= 3.0
    assert choice_size(262_000, options, 5, 25, 0.01, timed) == (MIN_CHOICE_ROWS, MIN_ROUNDS)
    assert choice_size(4_000, options, 5, 25, 0.01, timed) == (4_000, 25)
