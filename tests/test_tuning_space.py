"""Search-space knobs: narrowing for the fine search, edge-of-range reports, tune.space ranges."""
import math

import numpy as np

import keras_tuner as kt
import pytest

from comp.objective import Objective
from comp.stages.trials import Trial, gate
from comp.tuning.space import Knob, apply_ranges, knobs_from_hp


def test_a_log_knob_narrows_to_3x_either_side_of_the_best_within_its_range():
    lr = Knob("train.lr", 1e-4, 1e-2, log=True)
    fine = lr.narrowed(1e-3)
    assert math.isclose(fine.low, 1e-3 / 3) and math.isclose(fine.high, 3e-3)
    edge = lr.narrowed(1.2e-4)
    assert edge.low == 1e-4  # clipped to the searched range
    assert lr.narrowed(1.0) is lr  # a best outside the range (never searched): unchanged


def test_a_choice_is_fixed_at_the_best_and_declared_to_keras_tuner():
    schedule = Knob("train.schedule", choices=("cosine", "onecycle"))
    hp = kt.HyperParameters()
    schedule.narrowed("onecycle").declare(hp)
    assert hp.values == {"train.schedule": "onecycle"}
    hp = kt.HyperParameters()
    Knob("model.hp.batchnorm", choices=(False, True)).declare(hp)
    assert type(hp.space[0]).__name__ == "Boolean"


def test_a_best_value_at_the_edge_is_reported_with_a_wider_range():
    lr = Knob("train.lr", 1e-4, 1e-2, log=True)
    assert lr.edge(1e-3) is None
    sentence = lr.edge(9.5e-3)
    assert "train.lr=0.0095 is at the top of its searched range [0.0001, 0.01]" in sentence
    assert "tune.space={train.lr: [0.001, 0.1]}" in sentence
    assert "bottom" in lr.edge(1.05e-4)
    filters = Knob("model.hp.filters", 16, 128, integer=True, limit=True)
    assert "the model plugin's own limit" in filters.edge(128)


def test_plugin_knobs_keep_their_ranges_and_tune_space_replaces_or_drops_them():
    hp = kt.HyperParameters()
    hp.Int("filters", 16, 128, default=32)
    hp.Float("dropout", 0.0, 0.6, default=0.25)
    hp.Boolean("batchnorm", default=True)
    knobs = knobs_from_hp(hp.space, "model.hp.")
    assert [(k.key, k.low, k.high, k.default) for k in knobs[:2]] == [
        ("model.hp.filters", 16, 128, 32), ("model.hp.dropout", 0.0, 0.6, 0.25)]
    ranged = apply_ranges(knobs, {"model.hp.filters": [16, 64], "model.hp.batchnorm": []})
    assert [(k.key, k.high) for k in ranged] == [("model.hp.filters", 64), ("model.hp.dropout", 0.6)]
    with pytest.raises(ValueError, match=r"tune.space.model.hp.filters=\[8, 64\]: the model plugin takes 16..128"):
        apply_ranges(knobs, {"model.hp.filters": [8, 64]})
    with pytest.raises(ValueError, match="tune.space.train.lr: not a searched knob here"):
        apply_ranges(knobs, {"train.lr": [1e-4, 1e-2]})


def test_the_search_gate_keeps_only_what_a_paired_t_test_supports():
    higher = Objective(higher_is_better=True)
    reference = Trial({}, 0.900, [0.90, 0.90], [0, 1], 1.0)
    steady = Trial({}, 0.910, [0.91, 0.91], [0, 1], 1.0)
    verdict = gate(steady, reference, higher)
    assert math.isclose(verdict.gain, 0.01) and verdict.noise == 0.0 and verdict.keep
    # Both folds up, by different amounts: one degree of freedom needs t > 3.08 at a 10% false-keep rate.
    both_up = Trial({}, 0.908, [0.904, 0.912], [0, 1], 1.0)
    verdict = gate(both_up, reference, higher)
    assert math.isclose(verdict.noise, 0.004) and math.isclose(verdict.needed, 3.0777, rel_tol=1e-3)
    assert not verdict.keep  # the old "gain beats one standard error" kept this
    # Five folds, consistently up: kept; compared with ten trials the bar rises and it is not.
    five = Trial({}, 0.906, [0.905, 0.906, 0.907, 0.905, 0.907], list(range(5)), 1.0)
    flat = Trial({}, 0.900, [0.9] * 5, list(range(5)), 1.0)
    assert gate(five, flat, higher).keep
    noisy = Trial({}, 0.903, [0.91, 0.89, 0.92, 0.895, 0.90], list(range(5)), 1.0)
    assert not gate(noisy, flat, higher).keep
    lower = Trial({}, 0.5, [0.5, 0.5], [0, 1], 1.0)  # an error metric: lower is better
    assert math.isclose(gate(lower, Trial({}, 0.6, [0.6, 0.6], [0, 1], 1.0), Objective(False)).gain, 0.1)


def test_a_search_gate_over_noise_keeps_at_about_its_stated_rate():
    """Candidates with no effect (fold scores drawn from the same distribution as the
    reference's): the gate keeps about FALSE_KEEP / comparisons of them, not a quarter."""
    from comp.significance import FALSE_KEEP

    rng = np.random.default_rng(0)
    higher = Objective(higher_is_better=True)
    for folds in (2, 5):
        kept = 0
        for _ in range(4000):
            ref, cand = rng.normal(0.9, 0.01, folds), rng.normal(0.9, 0.01, folds)
            kept += gate(Trial({}, cand.mean(), list(cand), list(range(folds)), 1.0),
                         Trial({}, ref.mean(), list(ref), list(range(folds)), 1.0), higher).keep
        assert kept / 4000 < FALSE_KEEP * 1.25, (folds, kept / 4000)


@pytest.mark.parametrize("kind", ["random", "bayesian", "hyperband"])
def test_every_oracle_drives_the_objective_and_resumes_without_redoing_trials(kind, tmp_path):
    from comp.tuning.search import make_oracle, search, trial_score

    calls = []

    def objective(trial_id, values):
        calls.append(dict(values))
        return {"score": -(values["x"] - 0.3) ** 2, "fold_0": 0.0}

    def oracle(deadline=lambda: False):
        return make_oracle(kind, [Knob("x", 0.0, 1.0)], {"comp_epochs": 3}, objective=Objective(higher_is_better=True),
                           max_trials=4, max_epochs=3, seed=1, deadline=deadline)

    trials = search(oracle(), objective, tmp_path, kind)
    assert len(trials) == len(calls) >= 3
    assert all(trial_score(t) is not None for t in trials)
    assert all(c["comp_epochs"] == 3 for c in calls)
    if kind == "hyperband":  # short trials first, the best promoted to the full length
        assert {c["tuner/epochs"] for c in calls} == {1, 3}
    again = search(oracle(), objective, tmp_path, kind)  # a rerun: the finished search is reloaded
    assert len(again) == len(trials) and len(calls) == len(trials)
    assert search(oracle(deadline=lambda: True), objective, tmp_path / "late", kind) == []  # no time: no trial


@pytest.mark.parametrize("kind", ["random", "bayesian"])
def test_a_coarse_search_scores_the_start_first_and_resumes_without_a_second_start(kind, tmp_path):
    """The start (every knob at its default) is the first trial, so a search whose random trials
    all do worse narrows around it; a start outside a searched range is not forced into it."""
    from comp.tuning.search import make_oracle, search

    calls = []

    def objective(trial_id, values):
        calls.append(dict(values))
        return {"score": -(values["x"] - 0.3) ** 2, "fold_0": 0.0}

    def oracle(default=0.62):
        knobs = [Knob("x", 0.0, 1.0, default=default), Knob("n", 16, 64, integer=True, default=32),
                 Knob("s", choices=("cosine", "onecycle"), default="onecycle")]
        return make_oracle(kind, knobs, {}, objective=Objective(higher_is_better=True), max_trials=3, max_epochs=3,
                           seed=1, deadline=lambda: False, start_first=True)

    search(oracle(), objective, tmp_path / "a", "coarse")
    assert calls[0] == {"x": 0.62, "n": 32, "s": "onecycle"} and len(calls) == 3
    assert all(c["x"] != 0.62 for c in calls[1:])
    search(oracle(), objective, tmp_path / "a", "coarse")  # reloaded: nothing run again
    assert len(calls) == 3
    calls.clear()
    search(oracle(default=1.5), objective, tmp_path / "b", "coarse")  # outside [0, 1]: random from the start
    assert calls[0]["x"] != 1.0 and calls[0]["x"] != 1.5


# bayesian (~24 s: a Gaussian process per proposal) runs in `pytest -m slow` (CI's 20 minutes)
@pytest.mark.parametrize("kind", ["random", pytest.param("bayesian", marks=pytest.mark.slow), "hyperband"])
def test_proposed_values_stay_inside_random_ranges_narrowed_or_not(kind, tmp_path):
    """Property: over random ranges (integer, log, linear, choices), narrowed around a best at
    the edge as the fine search does, every value an oracle proposes is inside its knob. The
    objective rewards the top of each range, where keras-tuner's log-sampled Int would propose
    max + 1 (a 15-minute run died on min_samples_leaf=101 of the plugin's 2..100)."""
    import random

    from comp.tuning.search import make_oracle, search

    rng = random.Random(7)
    for case in range(3):
        knobs = []
        for i in range(4):
            low = rng.choice([1, 2, 3, 16]) * 10 ** rng.randint(-4, 1)
            high = low * rng.uniform(1.5, 200)
            integer, log = rng.random() < 0.6, rng.random() < 0.6
            if integer:
                low, high = max(1, round(low)), max(2, round(high))
                high = max(high, low + 1)
            knob = Knob(f"k{i}", low, high, log=log, integer=integer, limit=True)
            knobs.append(knob.narrowed(knob.high) if rng.random() < 0.5 else knob)
        knobs.append(Knob("c", choices=("a", "b", "c")))
        by_key = {k.key: k for k in knobs}
        seen = []

        def objective(trial_id, values):
            seen.append(values)
            return {"score": sum((values[k.key] - k.low) / (k.high - k.low + 1e-12) for k in knobs if k.numeric)}

        # bayesian: 3 random points, then 2 from the Gaussian process (each ~2 s of L-BFGS restarts)
        oracle = make_oracle(kind, knobs, {}, objective=Objective(higher_is_better=True),
                             max_trials=5 if kind == "bayesian" else 10,
                             max_epochs=3, seed=case, deadline=lambda: False)
        search(oracle, objective, tmp_path / str(case), kind)
        assert seen
        for values in seen:
            for key, value in values.items():
                if key in by_key and by_key[key].numeric:
                    knob = by_key[key]
                    assert knob.low <= value <= knob.high, (kind, case, key, value, knob)
                    assert isinstance(value, int) == knob.integer, (key, value)
                elif key in by_key:
                    assert value in by_key[key].choices


def test_clip_holds_a_value_to_its_knob():
    leaf = Knob("model.hp.min_samples_leaf", 2, 100, log=True, integer=True, limit=True)
    assert leaf.clip(101) == 100 and leaf.clip(1) == 2 and leaf.clip(37.6) == 38
    assert Knob("lr", 1e-4, 1e-2, log=True).clip(0.5) == 1e-2
    assert Knob("s", choices=("a", "b"), default="b").clip("z") == "b"


@pytest.mark.parametrize("damaged", ["oracle.json", "trial_0/trial.json"])
def test_a_half_written_search_state_restarts_the_search_with_a_notice(damaged, tmp_path):
    """A kill while keras-tuner writes its state leaves a half-written JSON file: the rerun sets
    the state aside, says so in one line, and searches again instead of a JSONDecodeError."""
    from comp.tuning.search import make_oracle, search, trial_score

    calls, said = [], []

    def objective(trial_id, values):
        calls.append(values["x"])
        return {"score": -(values["x"] - 0.3) ** 2}

    def oracle():
        return make_oracle("random", [Knob("x", 0.0, 1.0)], {}, objective=Objective(higher_is_better=True),
                           max_trials=3, max_epochs=1, seed=1, deadline=lambda: False)

    assert len(search(oracle, objective, tmp_path, "coarse")) == 3
    state = tmp_path / "coarse" / damaged
    state.write_text(state.read_text()[: len(state.read_text()) // 2])
    trials = search(oracle, objective, tmp_path, "coarse", log=said.append)
    assert len(trials) == 3 and all(trial_score(t) is not None for t in trials)
    assert len(said) == 1 and "could not be read" in said[0] and "set aside as coarse.damaged" in said[0]
    assert (tmp_path / "coarse.damaged" / damaged).is_file()  # kept for a look, not deleted


def test_a_configuration_error_fails_the_trial_only_when_it_names_the_trials_values(tmp_path):
    """min_samples_leaf=101 (a trial's value) fails that trial; an error of the setup, which
    names none of the trial's keys, stops the search instead of failing every trial alike."""
    from types import SimpleNamespace

    from comp.errors import ConfigError
    from comp.stages.trials import TrialObjective, TrialPlan
    from comp.tuning.search import Stop

    said = []
    plan = TrialPlan({"model.hp.min_samples_leaf": 101}, tmp_path, 1, 0.0, [0], False, "fine trial 3")

    def objective_raising(message):
        ctx = SimpleNamespace(log=said.append, failed=lambda what, exc: said.append(f"{what} failed: {exc}"))
        objective = TrialObjective(ctx, lambda trial_id, values: plan)

        def run(*args, **kwargs):
            raise ConfigError(message)

        objective.runner = SimpleNamespace(lr=0.0, run=run, close=lambda: None)
        return objective

    with pytest.raises(ConfigError):
        objective_raising("model.hp.min_samples_leaf=101: model plugin 'hgb' takes a whole number in 2..100")("3", {})
    assert said == ["fine trial 3 failed: model.hp.min_samples_leaf=101: model plugin 'hgb' takes a whole number "
                    "in 2..100"]
    with pytest.raises(Stop):
        objective_raising("data.image_size: the cache folder is not writable")("3", {})


def test_a_trial_folder_resumes_only_folds_of_its_own_configuration(tmp_path):
    """A search restarted after damaged state numbers its trials anew: trial 0's folds on disk
    may be another configuration's, and are then removed, not resumed."""
    from comp.stages.trials import TRIAL_OF, _claim

    out = tmp_path / "trials" / "coarse" / "0"
    _claim(out, {"changes": {"train.lr": 0.001}, "epochs": 3})
    (out / "fold_0").mkdir()
    (out / "fold_0" / "done.json").write_text("{}")
    _claim(out, {"changes": {"train.lr": 0.001}, "epochs": 3})  # the same trial resumed: its folds stay
    assert (out / "fold_0" / "done.json").is_file()
    _claim(out, {"changes": {"train.lr": 0.01}, "epochs": 3})  # another configuration under the same id
    assert not (out / "fold_0").exists() and "0.01" in (out / TRIAL_OF).read_text()


def test_a_trial_going_badly_is_held_to_the_best_trials_folds_and_stopped(tmp_path):
    """After a finished trial scoring 0.90, 0.92, 0.91 on folds 0-2, the next trial of its phase
    and length is held to those scores less 3 spreads (at least 5% of its score): a trial past that floor on
    its first fold is not trained on the others, is logged so, and never becomes the best."""
    from types import SimpleNamespace

    from comp.objective import Objective
    from comp.stages.trials import GIVE_UP_RELATIVE, GIVE_UP_SPREAD, Trial, TrialObjective, TrialPlan, finished_trial

    said, floors = [], []
    ctx = SimpleNamespace(log=said.append, task=SimpleNamespace(objective=Objective(True), metric_name="accuracy"))
    plans = {"0": TrialPlan({}, tmp_path, 3, 1e-3, [0, 1, 2], False, "coarse trial 0", "coarse", give_up=True),
             "1": TrialPlan({}, tmp_path, 3, 1e-3, [0, 1, 2], False, "coarse trial 1", "coarse", give_up=True),
             "2": TrialPlan({}, tmp_path, 9, 1e-3, [0, 1, 2], False, "fine trial 0", "fine", give_up=True),
             "3": TrialPlan({}, tmp_path, 9, 1e-3, [0, 1, 2], False, "fine trial 1", "fine", give_up=True)}
    results = {"0": Trial({}, 0.91, [0.90, 0.92, 0.91], [0, 1, 2], 30.0),
               "1": Trial({}, 0.39, [0.39], [0], 10.0, gave_up=True),
               "2": Trial({}, 0.95, [0.95, 0.95, 0.95], [0, 1, 2], 30.0),
               "3": Trial({}, 0.94, [0.94, 0.93, 0.95], [0, 1, 2], 30.0)}
    objective = TrialObjective(ctx, lambda trial_id, values: plans[trial_id])

    def run(changes, folder, epochs, time, folds, keep_weights, floor):
        floors.append(floor)
        return results[str(len(floors) - 1)]

    objective.runner = SimpleNamespace(lr=1e-3, run=run, close=lambda: None)
    first = objective("0", {})
    assert floors == [None] and first["gave_up"] == 0.0  # nothing finished yet to be held to
    second = objective("1", {})
    margin = GIVE_UP_SPREAD * GIVE_UP_RELATIVE * 0.91  # the folds' spread (0.01) is under 5% of the score
    assert floors[1].scores == pytest.approx({0: 0.90 - margin, 1: 0.92 - margin, 2: 0.91 - margin})
    assert floors[1].below(0, 0.39) and not floors[1].below(0, 0.80)
    assert second["gave_up"] == 1.0 and "fold_1" not in second
    assert said == ["coarse trial 1, stopped after fold 1 (1 of 3): past its floor 0.76350, the best trial's score "
                    "there less 3 fold spreads"]
    assert objective.best[("coarse", 3)] is results["0"]  # a stopped trial is never the best
    objective("2", {})
    assert floors[2] is None  # another phase (another length) is held to its own trials only
    objective("3", {})  # folds that happen to agree: the spread is at least 5% of the score, not 0
    assert floors[3].scores[0] == pytest.approx(0.95 - GIVE_UP_SPREAD * GIVE_UP_RELATIVE * 0.95)
    assert not floors[3].below(0, 0.85)

    from keras_tuner.src.engine.trial import TrialStatus

    kt_trial = SimpleNamespace(score=0.39, status=TrialStatus.COMPLETED, metrics=SimpleNamespace(
        exists=lambda name: name in second, get_last_value=lambda name: second[name], metrics=second))
    assert finished_trial(kt_trial, {}, "trials/coarse/1") is None  # not a whole trial: never compared


def test_trials_that_failed_out_of_sight_count_as_the_stages_failures(monkeypatch):
    """A trial that failed on a keras-tuner worker reaches the chief only as a FAILED trial in
    its oracle: the chief's stage records it (so strict=true and the warning count it), once,
    and not a failure it already recorded itself."""
    from types import SimpleNamespace

    from keras_tuner.src.distribute import utils as dist_utils
    from keras_tuner.src.engine.trial import TrialStatus

    from comp.stages.trials import count_remote_failures

    said = []
    ctx = SimpleNamespace(failures=[{"what": "fine trial 0", "reason": "ValueError: here"}], log=said.append)
    trials = [SimpleNamespace(trial_id="0", status=TrialStatus.FAILED, message="Traceback...\nValueError: here"),
              SimpleNamespace(trial_id="1", status=TrialStatus.FAILED,
                              message="Traceback (most recent call last):\n  ...\nRuntimeError: the plugin's bug\n"),
              SimpleNamespace(trial_id="2", status=TrialStatus.COMPLETED, message=None)]
    monkeypatch.setattr(dist_utils, "has_chief_oracle", lambda: True)
    count_remote_failures(ctx, trials, lambda t: f"fine trial {t.trial_id}")
    assert ctx.failures[1:] == [{"what": "fine trial 1",
                                 "reason": "RuntimeError: the plugin's bug (on a keras-tuner worker)"}]
    assert said == ["fine trial 1 failed on a keras-tuner worker: RuntimeError: the plugin's bug (left out)"]
    count_remote_failures(ctx, trials, lambda t: f"fine trial {t.trial_id}")
    assert len(ctx.failures) == 2  # counted once


def test_a_worker_that_reaches_a_phase_its_chief_has_ended_stops_instead_of_waiting(tmp_path, monkeypatch):
    """keras-tuner's client waits forever for a chief that is gone: a worker late to a phase
    (nothing serves its port, the chief's file says the phase ended) runs no trial and returns."""
    import socket
    import threading

    from comp.tuning.search import make_oracle, search

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
    monkeypatch.delenv("COMP_TUNER_BASE_PORT", raising=False)
    ended = tmp_path / "ended" / "tune-fine"
    ended.parent.mkdir()
    ended.write_text("fine\n")
    calls, returned = [], []

    def worker():
        oracle = make_oracle("random", [Knob("x", 0.0, 1.0)], {}, objective=Objective(higher_is_better=True),
                             max_trials=2, max_epochs=1, seed=0, deadline=lambda: False)
        returned.append(search(oracle, lambda trial_id, values: calls.append(values) or {"score": 0.0},
                               tmp_path / "oracle", "fine", phase=0, ended=ended))

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the worker waited for a chief that had ended the phase"
    assert returned == [[]] and calls == []
