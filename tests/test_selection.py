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
