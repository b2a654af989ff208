"""A keras-tuner search whose trials are scored by a function (cross-validation, in comp).

keras-tuner's own ``Tuner.run_trial`` fits one model on one split (and on the TensorFlow
backend imports ``tensorboard``, which TensorFlow 2.21 no longer installs); keras-tuner has
no cross-validated objective (keras-tuner issues #139, #420, #663). So the tuner here is a
``BaseTuner`` whose ``run_trial`` calls ``objective(trial_id, values)``: the oracles
(RandomSearch, BayesianOptimization, Hyperband), their saved state, resumption of an
interrupted trial and the chief/worker distribution are keras-tuner's.

Distribution is keras-tuner's: with ``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP`` and
``KERASTUNER_ORACLE_PORT`` set, the process named ``chief`` serves the oracle and the
others run trials. A search of several phases serves phase ``i`` on port ``PORT + i``.
"""
from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Callable

import keras_tuner as kt
from keras_tuner.src import config as kt_config
from keras_tuner.src.distribute import utils as dist_utils
from keras_tuner.src.engine import trial as trial_module

from comp.objective import Objective
from comp.tuning.space import Knob

# keras-tuner prints the traceback of every failed trial while DEBUG is on (its default):
# the objective says in one line why a trial failed or stopped; the traceback stays in the
# trial's record (trial.json).
kt_config.DEBUG = False

# (trial id, values) -> {"score": what the search optimises, other metrics to keep with the trial}
TrialFunction = Callable[[str, dict[str, Any]], dict[str, float]]
ORACLES = ("random", "bayesian", "hyperband")


class Stop(Exception):
    """Raised by an objective to end the search at once; ``search`` re-raises ``error``."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


class _Fatal(kt.errors.FatalError):
    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


IDLE_WAIT = 0.5  # seconds a tuner waits before asking again when the oracle has no trial for it yet


class _CVTuner(kt.engine.base_tuner.BaseTuner):
    def __init__(self, oracle, objective: TrialFunction, directory: Path, project: str, ended: Path | None = None):
        self._objective = objective
        super().__init__(oracle=oracle, directory=str(directory), project_name=project, overwrite=False)
        create = self.oracle.create_trial

        def create_trial(tuner_id):
            if ended is not None and is_worker() and not _chief_serving(ended):
                return trial_module.Trial(kt.HyperParameters(), status=trial_module.TrialStatus.STOPPED)
            # keras-tuner's loop asks again at once after an IDLE answer (an oracle waiting for a
            # trial elsewhere, as regularize's does): without a pause a worker spins on the chief.
            trial = create(tuner_id)
            if trial.status == trial_module.TrialStatus.IDLE:
                time.sleep(IDLE_WAIT)
            return trial

        self.oracle.create_trial = create_trial

    def run_trial(self, trial, *args, **kwargs):
        try:
            return {k: float(v) for k, v in self._objective(trial.trial_id, dict(trial.hyperparameters.values)).items()}
        except Stop as stop:  # a problem of the setup, not of this trial's values: stop searching
            raise _Fatal(stop.error) from None


def _chief_serving(ended: Path) -> bool:
    """On a worker, before asking the chief for a trial: True once the chief serves this
    phase's oracle, False once the chief has written ``ended`` (the phase is over).

    keras-tuner's client asks with gRPC's ``wait_for_ready``, which waits forever for a
    server that is gone: the chief ends a phase as soon as no tuner it has seen still runs a
    trial, so a worker that reaches a phase late (its last trial of the phase before took
    longer) would hang. The port tells a phase being served; the chief's file tells a phase
    already over from one not yet started."""
    address = (os.environ["KERASTUNER_ORACLE_IP"], int(os.environ["KERASTUNER_ORACLE_PORT"]))
    while True:
        try:
            socket.create_connection(address, timeout=2).close()
            return True
        except OSError:
            if ended.is_file():
                return False
        time.sleep(IDLE_WAIT)


def is_worker() -> bool:
    """True in a keras-tuner worker process (trials only; the chief serves the oracle)."""
    return dist_utils.has_chief_oracle() and not dist_utils.is_chief_oracle()


def make_oracle(kind: str, knobs: list[Knob], fixed: dict[str, Any], *, objective: Objective, max_trials: int,
                max_epochs: int, seed: int, deadline: Callable[[], bool], start_first: bool = False):
    """A keras-tuner oracle over ``knobs`` (plus ``fixed`` values every trial carries) that stops
    creating trials once ``deadline()`` is true, or after ``max_trials`` (0: none). With
    ``start_first`` (not hyperband, whose brackets pick their own) its first trial is every knob
    at its ``default`` where each lies in its range: the configuration searched around, scored
    like the others, so a search whose random trials all do worse narrows around the start."""
    hp = kt.HyperParameters()
    by_key = {knob.key: knob for knob in knobs}
    for knob in knobs:
        knob.declare(hp)
    for key, value in fixed.items():
        hp.Fixed(key, value)
    start = ({knob.key: knob.clip(knob.default) for knob in knobs}
             if start_first and kind != "hyperband" and all(knob.holds(knob.default) for knob in knobs) else None)
    common = dict(objective=kt.Objective("score", objective.direction), hyperparameters=hp, seed=seed, tune_new_entries=False,
                  max_consecutive_failed_trials=max(3, max_trials))
    if kind == "hyperband":
        base, args = kt.oracles.HyperbandOracle, dict(max_epochs=max(max_epochs, 2), factor=3, hyperband_iterations=1)
    elif kind == "bayesian":
        base, args = kt.oracles.BayesianOptimizationOracle, dict(max_trials=max(max_trials, 1),
                                                                  num_initial_points=min(3, max(max_trials, 1)))
    else:
        base, args = kt.oracles.RandomSearchOracle, dict(max_trials=max(max_trials, 1))

    class TimedOracle(base):
        failed_out = False

        def _check_consecutive_failures(self):
            # keras-tuner raises here, which would end the run: the search ends instead, and the
            # stage goes on with what it had (each failed trial logged its reason).
            try:
                super()._check_consecutive_failures()
            except RuntimeError:
                self.failed_out = True

        def populate_space(self, trial_id):
            if (max_trials == 0 and kind != "hyperband") or deadline() or self.failed_out:
                return {"status": trial_module.TrialStatus.STOPPED, "values": None}
            if start is not None and not self.trials:  # a resumed search has its trials: no second start
                return {"status": trial_module.TrialStatus.RUNNING, "values": {**self.hyperparameters.values, **start}}
            proposal = super().populate_space(trial_id)
            if proposal.get("values"):  # inside the declared ranges by construction, whatever the oracle sampled
                proposal["values"] = {key: by_key[key].clip(value) if key in by_key else value
                                      for key, value in proposal["values"].items()}
            return proposal

    oracle = TimedOracle(**common, **args)
    oracle.verbose = 0  # each trial is one line in comp's log instead of keras-tuner's tables
    return oracle


def search(oracle, objective: TrialFunction, directory: Path, project: str, phase: int = 0,
           log: Callable[[str], None] = print, ended: Path | None = None) -> list[Any]:
    """Run (or resume) the search; return the oracle's trials (on a worker: none, the chief has them).

    ``ended``, in distributed search, is a file every process can read: the chief writes it
    when it stops serving this phase, and a worker that finds it (and no oracle on the
    phase's port) ends the phase instead of waiting for a chief that is gone.

    ``oracle`` is a keras-tuner oracle or a function making one. Where the saved state cannot be
    read (a file half-written when the process was killed), the state is set aside as
    ``<project>.damaged``, ``log`` says so, and the search starts again with a new oracle. It
    numbers its trials anew: a trial's folder keeps the folds it finished only when they are of
    the same configuration (``comp.stages.trials``)."""
    port = os.environ.get("KERASTUNER_ORACLE_PORT")
    if port and dist_utils.has_chief_oracle():
        base = int(os.environ.setdefault("COMP_TUNER_BASE_PORT", port))
        os.environ["KERASTUNER_ORACLE_PORT"] = str(base + phase)
    chief = dist_utils.has_chief_oracle() and dist_utils.is_chief_oracle()
    if chief and ended is not None:
        ended.unlink(missing_ok=True)  # an earlier attempt's: this one serves the phase again
    make = oracle if callable(oracle) else (lambda: oracle)
    fresh = make()  # outside the try: an error of the oracle itself is not damaged state
    try:
        tuner = _CVTuner(fresh, objective, directory, project, ended)
    except (ValueError, KeyError, RuntimeError) as exc:  # json's JSONDecodeError is a ValueError
        state = Path(directory) / project
        if not callable(oracle) or not state.is_dir():
            raise
        aside = state.with_name(project + ".damaged")
        shutil.rmtree(aside, ignore_errors=True)
        state.rename(aside)
        log(f"search state {state} could not be read ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}): "
            f"set aside as {project}.damaged; the search starts again")
        tuner = _CVTuner(make(), objective, directory, project, ended)
    try:
        tuner.search()
    except _Fatal as fatal:
        raise fatal.error from None
    finally:
        if chief and ended is not None:  # however the phase ended: a late worker must not wait for it
            ended.parent.mkdir(parents=True, exist_ok=True)
            ended.write_text(f"{project}\n")
    if is_worker():
        return []
    return [tuner.oracle.trials[t] for t in tuner.oracle.start_order]


def trial_score(trial) -> float | None:
    """A finished trial's objective value, or None (failed, or cut before it ended)."""
    if trial.status != trial_module.TrialStatus.COMPLETED or trial.score is None:
        return None
    return float(trial.score)
