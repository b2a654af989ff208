"""Forward-chaining folds on a date column (split.time_column), and inspect's hint."""
import numpy as np
import pandas as pd
import pytest

from tests.conftest import SMOKE, copy_competition


def _dated(demo_root, root, test_after=True):
    """The diabetes demo with a visit date per row: train rows from 2020 on, a few per day,
    test rows after them (or mixed in)."""
    root = copy_competition(demo_root, root)
    train, test = pd.read_csv(root / "train.csv", dtype=str), pd.read_csv(root / "test.csv", dtype=str)
    days = pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(len(train)) // 3, unit="D")
    train.insert(1, "visit", days.strftime("%Y-%m-%d"))
    start = days.max() + pd.Timedelta(days=1) if test_after else pd.Timestamp("2020-01-01")
    test.insert(1, "visit", (start + pd.to_timedelta(np.arange(len(test)) // 3, unit="D")).strftime("%Y-%m-%d"))
    train.to_csv(root / "train.csv", index=False)
    test.to_csv(root / "test.csv", index=False)
    return root


@pytest.fixture
def diabetes():
    from comp.demo import cache_root, demo_competition

    return demo_competition(cache_root(), "diabetes")


def test_folds_chain_forward_and_each_model_learns_only_from_the_past(diabetes, workdir, comp):
    from comp.training.cv import HISTORY, fit_rows

    root = _dated(diabetes, workdir / "dated")
    code, out, err = comp("run", "stage=all", *SMOKE, f"competition={root}", "split.folds=3",
                          "split.time_column=visit", "ensemble.candidates=[fold,variants]")
    assert code == 0, err[-2000:]
    train = pd.read_csv(root / "train.csv", dtype=str)
    folds = pd.read_csv(workdir / "runs/dated/split/folds.csv", dtype=str)
    fold_of = folds["fold"].astype(int).to_numpy()
    visit = pd.to_datetime(train["visit"]).to_numpy()
    assert sorted(set(fold_of)) == [HISTORY, 0, 1, 2]
    assert abs((fold_of == HISTORY).sum() - len(train) / 4) <= 3  # four blocks of about equal rows
    for k in range(3):
        learnt, scored = fit_rows(fold_of, k), np.flatnonzero(fold_of == k)
        assert visit[learnt].max() < visit[scored].min()  # never a row from the window's future
        assert set(learnt) == set(np.flatnonzero((fold_of == HISTORY) | ((fold_of >= 0) & (fold_of < k))))
    oof = pd.read_csv(workdir / "runs/dated/baseline/oof.csv", dtype=str)
    assert len(oof) == len(train)  # every row listed; the history's rows carry no score
    assert "3 folds forward in time on 'visit'" in out
    assert "[ensemble] stacking: not tried, the folds run forward in time" in out  # no stacker learns from the future
    assert len(list((workdir / "submissions").glob("dated-*.csv"))) == 1


def test_inspect_says_when_the_test_rows_come_after_train_and_names_the_key(diabetes, workdir, comp):
    root = _dated(diabetes, workdir / "later")
    code, out, err = comp("run", "stage=inspect", f"competition={root}", "inspect.adversarial=false")
    assert code == 0, err[-2000:]
    assert ("PROBLEM: every test row's 'visit' comes after every train row's: the test set is the future, and "
            "shuffled folds would score on the past; split.time_column=visit makes the folds forward in time") in out
    mixed = _dated(diabetes, workdir / "mixed", test_after=False)
    code, out, err = comp("run", "stage=inspect", f"competition={mixed}", "inspect.adversarial=false")
    assert code == 0 and "split.time_column" not in out


def test_a_time_column_that_cannot_order_the_rows_is_refused_before_any_work(diabetes, workdir, comp):
    root = _dated(diabetes, workdir / "bad")
    train = pd.read_csv(root / "train.csv", dtype=str)
    train.loc[6, "visit"] = "soon"
    train.to_csv(root / "train.csv", index=False)
    code, out, err = comp("run", "stage=all", f"competition={root}", "split.time_column=visit")
    assert code == 2
    assert err.strip() == (f"error: {root.resolve() / 'train.csv'} row 8: visit='soon' is not a date, time or "
                           "number; split.time_column needs one in every row")
    assert not (workdir / "runs").exists()


def test_dates_are_ordered_as_written_day_first_and_across_offsets():
    from comp.time_order import forward_folds, time_values

    day_first = pd.Series(["13/01/2020", "25/01/2020", "01/02/2020", "05/02/2020", "10/02/2020", "03/03/2020"])
    assert forward_folds(time_values(day_first, "train.csv", "d"), 2).tolist() == [-2, -2, 0, 0, 1, 1]
    # 00:30, 00:10 and 00:45 UTC: offsets that change within the column (summer time) are converted
    offsets = pd.Series(["2020-03-29T01:30:00+01:00", "2020-03-29T02:10:00+02:00", "2020-03-29 00:45"])
    assert np.argsort(time_values(offsets, "train.csv", "d")).tolist() == [1, 0, 2]


def test_one_date_holding_most_rows_leaves_no_fold_empty():
    from comp.time_order import forward_folds

    folds = forward_folds(np.array([0.0] * 60 + list(range(1, 41))), 5)
    assert set(folds) == {-2, 0, 1, 2, 3, 4} and (folds[:60] == -2).all()
    assert np.all(np.diff(folds[60:]) >= 0)  # later values never in an earlier fold
