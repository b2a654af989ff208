"""A gradient-boosting fold fitted within its deadline (comp.training.bounded_fit), on real data."""
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from comp import clock
from comp.training.bounded_fit import BoundedFit


class SlowGBM(HistGradientBoostingClassifier):
    """A GBM whose every iteration costs a second on the test's clock."""

    def fit(self, x, y):
        before = getattr(self, "n_iter_", 0) if self.warm_start else 0
        super().fit(x, y)
        self._now[0] += self.n_iter_ - before
        return self


@pytest.fixture
def data():
    x, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    return x[order[:400]], y[order[:400]], x[order[400:]], y[order[400:]]


@pytest.fixture
def now(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(clock, "now", lambda: now[0])
    return now


def _gbm(now, **kw):
    model = SlowGBM(max_iter=200, learning_rate=0.1, early_stopping=False, random_state=0, **kw)
    model._now = now
    return model


def test_a_deadline_stops_the_fit_between_steps(data, now):
    x, y, xv, yv = data
    fit = BoundedFit(deadline=60.0)
    model = fit(_gbm(now), x, y)
    # 200 iterations would take 200 s: it stops before the step that would pass 60 s
    assert now[0] <= 60.0
    assert 20 <= model.n_iter_ < 200 and model.max_iter == model.n_iter_ and not model.warm_start
    assert fit.stopped == [(model.n_iter_, 200, "iterations")]
    assert (model.predict(xv) == yv).mean() > 0.9


def test_steps_that_fit_give_the_one_shot_model(data, now):
    x, y, xv, _ = data
    fit = BoundedFit(deadline=1e6)
    stepped = fit(_gbm(now), x, y)
    whole = _gbm([0.0]).fit(x, y)
    assert fit.stopped == [] and stepped.n_iter_ == 200
    np.testing.assert_allclose(stepped.predict_proba(xv), whole.predict_proba(xv))


def test_a_share_of_the_time_left(data, now):
    x, y, _, _ = data
    model = BoundedFit(deadline=100.0)(_gbm(now), x, y, share=0.25)
    assert now[0] <= 25.0 and model.n_iter_ < 200


def test_estimators_without_steps_fit_once(data, now):
    x, y, xv, yv = data
    model = BoundedFit(deadline=1.0)(LogisticRegression(max_iter=5000), x, y)
    assert (model.predict(xv) == yv).mean() > 0.9


class SlowTrees:
    """Extra trees whose every tree costs a second on the test's clock."""

    @staticmethod
    def make(now):
        from sklearn.ensemble import ExtraTreesClassifier

        class Slow(ExtraTreesClassifier):
            def fit(self, x, y, sample_weight=None):
                before = len(getattr(self, "estimators_", [])) if self.warm_start else 0
                super().fit(x, y, sample_weight)
                now[0] += len(self.estimators_) - before
                return self

        return Slow(n_estimators=300, random_state=0)


def test_a_forest_inside_a_pipeline_grows_its_trees_within_the_deadline(data, now):
    """The table portfolio's forests come as pipelines (their column encoding, then the
    model): the deadline reaches the trees through the pipeline's last step."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x, y, xv, yv = data
    fit = BoundedFit(deadline=100.0)
    model = fit(Pipeline([("columns", StandardScaler()), ("model", SlowTrees.make(now))]), x, y)
    trees = len(model.named_steps["model"].estimators_)
    assert now[0] <= 100.0 and 30 <= trees < 300
    assert fit.stopped == [(trees, 300, "iterations")] and model.named_steps["model"].n_estimators == trees
    assert not model.named_steps["model"].warm_start
    assert (model.predict(xv) == yv).mean() > 0.9


class SleepyLogistic(LogisticRegression):
    """A logistic regression whose fit takes 100 us a row of real time: the sleep, not the
    machine's load, sets what fits (a loaded CI machine made a 20-us version flaky)."""

    def fit(self, x, y, sample_weight=None):
        import time

        time.sleep(len(y) * 100e-6)
        return super().fit(x, y, sample_weight)


def test_the_linear_model_fits_the_rows_its_time_holds():
    """The linear model's solver cannot be stopped part-way: told its seconds, it times a
    tenth of the rows and fits again on what the rest holds (a 262,000-row table's folds took
    20 s each of a 2-minute budget before)."""
    import pandas as pd
    from sklearn.preprocessing import StandardScaler

    from comp_plugins.table_models import SampledPipeline

    x, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(y), 50_000)
    big = pd.DataFrame(x[rows] + rng.normal(0, 0.01, (len(rows), x.shape[1])) * x.std(axis=0))
    began = clock.now()
    fit = BoundedFit(deadline=clock.now() + 4.0)
    model = fit(SampledPipeline([("columns", StandardScaler()), ("model", SleepyLogistic(max_iter=2000))]),
                big, y[rows])
    assert clock.now() - began < 4.0 * 1.2
    assert 10_000 <= model.rows_fitted_ < 50_000 and model.time_limit == float("inf")
    assert fit.stopped == [(model.rows_fitted_, 50_000, "rows")]
    assert (model.predict(pd.DataFrame(x)) == y).mean() > 0.95
    whole = BoundedFit()(SampledPipeline([("columns", StandardScaler()), ("model", LogisticRegression(max_iter=2000))]),
                         big, y[rows])
    assert whole.rows_fitted_ == 50_000
