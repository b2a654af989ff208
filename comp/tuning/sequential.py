"""A keras-tuner oracle that tries one change at a time from the current configuration.

Stage regularize's search (docs/recipe.md 5): changes are proposed in a fixed order, each
trained alone on top of the changes kept so far, and kept only when the stage's gate says so.
As a keras-tuner ``Oracle`` it gets what tune's searches have: its state saved with every
trial (a killed search resumes where it was, the interrupted trial rerun from its finished
folds), and keras-tuner's chief/worker distribution (one trial at a time: each decision waits
for the trial before it, so a second worker idles).

The oracle knows no config or stage: the stage gives it three functions of a step's name -
``propose`` (the dotted changes it makes over the current ones, or why it does not apply),
``fits`` (None, or why it does not fit the time left) and ``decide`` (given the finished
trial, whether to keep it and the row to record) - and the starting point.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import keras_tuner as kt
from keras_tuner.src.engine import trial as trial_module

from comp.objective import Objective

Propose = Callable[[str, dict[str, Any]], "dict[str, Any] | str"]
Fits = Callable[[str], "str | None"]
Decide = Callable[[str, Any, dict[str, Any]], "tuple[bool, dict[str, Any]]"]  # (step, kt trial, current)


class SequentialOracle(kt.Oracle):
    """``steps`` tried in order from ``start`` (the current configuration: a dict with its
    ``changes``); ``fixed`` values go with every trial. After the search, ``current`` is the
    configuration with every kept step, ``kept`` their names and ``rows`` one entry per step
    (tried or not), in order."""

    def __init__(self, steps: list[str], start: dict[str, Any], *, propose: Propose, fits: Fits, decide: Decide,
                 objective: Objective, fixed: dict[str, Any], seed: int):
        # Every step may fail (a setting the model cannot take) without ending the search.
        super().__init__(objective=kt.Objective("score", objective.direction), max_trials=None, seed=seed,
                         max_consecutive_failed_trials=len(steps) + 1)
        self.steps, self.propose, self.fits, self.decide, self.fixed = steps, propose, fits, decide, fixed
        self.current = dict(start)
        self.kept: list[str] = []
        self.rows: list[dict[str, Any]] = []
        self.position = 0  # the next step to consider
        self.verbose = 0  # each trial is one line in comp's log instead of keras-tuner's tables

    def populate_space(self, trial_id):
        if self.ongoing_trials:  # the trial before decides what comes next: wait for it
            return {"status": trial_module.TrialStatus.IDLE, "values": None}
        while self.position < len(self.steps):
            step = self.steps[self.position]
            self.position += 1
            made = self.propose(step, self.current["changes"])
            why = made if isinstance(made, str) else self.fits(step)
            if why is not None:  # ``applies``: the step made changes, they did not fit the time left
                self.rows.append({"step": step, "skipped": why, "applies": not isinstance(made, str)})
                continue
            changes = {**self.current["changes"], **made}
            return {"status": trial_module.TrialStatus.RUNNING,
                    "values": {**self.fixed, "comp_step": step, "comp_changes": json.dumps(changes, sort_keys=True)}}
        return {"status": trial_module.TrialStatus.STOPPED, "values": None}

    def end_trial(self, trial):
        super().end_trial(trial)
        ended = self.trials[trial.trial_id]
        if ended.status == trial_module.TrialStatus.INVALID:  # sent for a retry: decided when it ends
            return
        step = ended.hyperparameters.values["comp_step"]
        keep, row = self.decide(step, ended, self.current)
        self.rows.append({"step": step, **row})
        if keep:
            self.current = row["trial"]
            self.kept.append(step)
        self.save()

    def get_state(self):
        state = super().get_state()
        state.update(comp_current=self.current, comp_kept=self.kept, comp_rows=self.rows,
                     comp_position=self.position)
        return state

    def set_state(self, state):
        super().set_state(state)
        self.current, self.kept = state["comp_current"], state["comp_kept"]
        self.rows, self.position = state["comp_rows"], state["comp_position"]
