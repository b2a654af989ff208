"""The ensemble's choices made on OOF predictions, and their honest score (docs/recipe.md 11).

From candidates' OOF predictions (each with and without its test-time views, and with each
probe view) ``choose`` decides, on the rows it is given: which views each candidate keeps,
the best single candidate (a tie within one standard error goes to the earlier, simpler
one), the greedy blend's weights, and blend or single (the blend only when its own nested
score beats the single's beyond one standard error).

Every one of those choices looks at labels, so the score of the rows they were chosen on
flatters them: with enough candidates, one wins on noise. ``nested`` scores the whole
procedure honestly: each fold is predicted by the choice made on the other folds only. The
choice made on every row is the one the test set gets; its number is published beside the
honest one, so the optimism is visible. No library does nested selection for a blend; this
module is the whole of it.

Every choice scores the metric again and again (a nested greedy blend of five candidates
over five folds: ~3,000 calls), so on a large table each call's pass over every row adds up
(262,000 rows under ROC-AUC: 46 ms a call, 178 s in all). Under a budget the choices are
made on a seeded sample of the rows, each fold's share of it (``sample_rows``), sized by
``choice_size`` to the time they have; the published OOF scores (the honest one, each
candidate's) are still computed on every row, the choices' own comparisons on the sample.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from comp.blending import blend, greedy_selection, nested_selection
from comp.objective import Objective
from comp.significance import tied

# (row positions, their predictions) -> the metric with the default decoding (thresholds 0.5): the
# choices compare candidates with it; fitting thresholds for each comparison would cost far more
Plain = Callable[[np.ndarray, np.ndarray], float]


@dataclass
class Option:
    """One candidate's OOF predictions (every train row)."""

    name: str
    plain: np.ndarray
    tta: np.ndarray | None = None  # averaged over the original and ``views`` views
    views: int = 0
    probes: dict[str, np.ndarray] = field(default_factory=dict)  # probe view -> predictions with it alone


@dataclass
class Choice:
    """What was chosen, and the scores it was chosen by (on the rows it was made on)."""

    keep_tta: list[bool]
    probes: list[list[str]]  # per option: the probe views kept
    probe_notes: list[str]  # per option: what each probe gained
    single: int
    weights: np.ndarray  # the blend's (summing to one); one-hot when the single is used
    used: str  # "single" | "blend"
    singles: list[float]  # per option: its score with the views kept
    plain: list[float]
    tta: list[float | None]
    blend_score: float | None = None  # the blend chosen on these rows, scored on them
    blend_nested: float | None = None  # ... with each fold's weights from the other folds


@dataclass
class Scoring:
    fold_of: np.ndarray
    plain: Plain
    objective: Objective
    rounds: int

    def fold_scores(self, rows: np.ndarray, pred: np.ndarray) -> list[float]:
        folds = self.fold_of[rows]
        return [self.plain(rows[folds == k], pred[rows[folds == k]]) for k in np.unique(folds)]

    def score(self, rows: np.ndarray, pred: np.ndarray) -> float:
        return self.plain(rows, pred[rows])


def prediction(option: Option, keep_tta: bool, probes: list[str]) -> np.ndarray:
    """``option``'s predictions with the views chosen: the original, its views if kept, each
    kept probe view, averaged with equal weight per view."""
    count = 1 + option.views if keep_tta else 1
    pred = (option.tta if keep_tta else option.plain).astype(np.float64)
    for name in probes:
        pred = (pred * count + option.probes[name]) / (count + 1)
        count += 1
    return pred.astype(np.float32)


def choose(options: list[Option], rows: np.ndarray, s: Scoring) -> Choice:
    """Every choice, made on ``rows`` (their labels and folds) only."""
    folds = s.fold_of[rows]
    keep, probes, notes, preds, plain_scores, tta_scores, singles = [], [], [], [], [], [], []
    for option in options:
        plain = s.score(rows, option.plain)
        tta = s.score(rows, option.tta) if option.tta is not None else None
        keep_tta = tta is not None and s.objective.better(tta, plain)
        pred, kept, found = prediction(option, keep_tta, []), [], []
        # A probe view (a mirror) joins only beyond the fold noise: it decides what the labels survive.
        for name in option.probes:
            trial = prediction(option, keep_tta, kept + [name])
            verdict = tied(s.objective.gain(s.score(rows, trial), s.score(rows, pred)),
                           s.fold_scores(rows, trial), s.fold_scores(rows, pred), s.objective)
            found.append(f"{name} {verdict.gain:+.4f} {'kept' if verdict.keep else 'not kept'}")
            if verdict.keep:
                kept.append(name)
                pred = trial
        keep.append(keep_tta)
        probes.append(kept)
        notes.append("; ".join(found))
        preds.append(pred)
        plain_scores.append(plain)
        tta_scores.append(tta)
        singles.append(s.score(rows, pred))
    best = s.objective.best_index(singles)
    # Ties go to the simpler candidate: the earliest within one standard error of the best.
    for i in range(best):
        gain = s.objective.gain(singles[best], singles[i])
        if not tied(gain, s.fold_scores(rows, preds[best]), s.fold_scores(rows, preds[i]), s.objective).keep:
            best = i
            break
    choice = Choice(keep, probes, notes, best, np.eye(len(options))[best], "single", singles, plain_scores,
                    tta_scores)
    if s.rounds > 0 and len(options) > 1 and len(np.unique(folds)) > 1:
        weights = greedy_selection(preds, rows, s.plain, s.objective, s.rounds)
        local = np.full(len(s.fold_of), -1)
        local[rows] = s.fold_of[rows]
        inner, _ = nested_selection(preds, local, s.plain, s.objective, s.rounds)
        choice.blend_score = s.score(rows, blend(preds, weights))
        choice.blend_nested = s.score(rows, inner)
        gain = s.objective.gain(choice.blend_nested, singles[best])
        if tied(gain, s.fold_scores(rows, inner), s.fold_scores(rows, preds[best]), s.objective).keep:
            choice.weights, choice.used = weights, "blend"
    return choice


def apply(choice: Choice, options: list[Option]) -> np.ndarray:
    """The predictions of every row under ``choice``."""
    preds = [prediction(o, k, p) if w > 0 else o.plain
             for o, k, p, w in zip(options, choice.keep_tta, choice.probes, choice.weights)]
    return blend(preds, choice.weights)


def nested(options: list[Option], s: Scoring, rows: np.ndarray | None = None) -> tuple[np.ndarray, list[Choice]]:
    """(honest OOF predictions, the choice behind each fold): fold k's rows (all of them) are
    predicted by the choice ``choose`` makes on the other folds' rows among ``rows`` (default:
    every scored row)."""
    out = np.zeros(options[0].plain.shape, dtype=np.float32)
    rows = np.flatnonzero(s.fold_of >= 0) if rows is None else rows[s.fold_of[rows] >= 0]
    choices = []
    for k in range(int(s.fold_of.max()) + 1):
        inside = np.flatnonzero(s.fold_of == k)
        outside = rows[s.fold_of[rows] != k]
        choice = choose(options, outside, s)
        out[inside] = apply(choice, options)[inside]
        choices.append(choice)
    return out, choices


MIN_CHOICE_ROWS = 5_000  # a sample never smaller: fewer rows make the choices noisy, whatever the time


def metric_calls(options: list[Option], folds: int, rounds: int) -> int:
    """About how many times ``choose`` on every row and ``nested`` score the metric together,
    for ``choice_size``'s forecast: the greedy blends dominate ((rounds + 1) x candidates for
    the outer choice's folds + 1 and each nested choice's folds)."""
    greedy = (rounds + 1) * len(options) * ((folds + 1) + folds * folds) if rounds > 0 and len(options) > 1 else 0
    probes = sum(len(o.probes) for o in options)
    # per choice: each candidate's plain, views and single scores and its tie test's fold
    # scores; each probe view's trial and its fold scores
    singles = len(options) * (3 + 2 * folds) + probes * (2 + 4 * folds)
    return int(greedy + (folds + 1) * singles)


MIN_ROUNDS = 5  # and never fewer greedy rounds than this


def choice_size(rows: int, options: list[Option], folds: int, rounds: int, seconds: float,
                call_seconds: tuple[float, int, float, int]) -> tuple[int, int]:
    """(the rows, the greedy rounds) the choices can be made with in ``seconds``, from two
    timed metric calls ``(seconds, on rows, seconds, on rows)``: a call's cost as fixed + per
    row. Every row and ``rounds`` when they fit (or when fewer than ``MIN_CHOICE_ROWS`` would);
    else the rows that fit, at least ``MIN_CHOICE_ROWS``; and where even those do not fit,
    fewer rounds (at least ``MIN_ROUNDS``): a metric's fixed cost per call (scikit-learn's
    ROC-AUC: ~1.5 ms) then dominates."""
    t_small, n_small, t_large, n_large = call_seconds
    per_row = max(t_large - t_small, 0.0) / max(n_large - n_small, 1)
    fixed = max(t_small - per_row * n_small, 0.0)
    calls = metric_calls(options, folds, rounds)
    if calls * (fixed + per_row * rows) <= seconds or rows <= MIN_CHOICE_ROWS:
        return rows, rounds
    fits = (seconds / max(calls, 1) - fixed) / per_row if per_row > 0 else rows
    size = int(min(rows, max(MIN_CHOICE_ROWS, fits)))
    cost = fixed + per_row * size
    while rounds > MIN_ROUNDS and metric_calls(options, folds, rounds) * cost > seconds:
        rounds -= 1
    return size, rounds


def sample_rows(rows: np.ndarray, fold_of: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` of ``rows`` (sorted), each fold's share of them, drawn with ``seed``: every
    fold keeps its place in the choices made on them. All of ``rows`` when ``size`` covers them."""
    if size >= len(rows):
        return rows
    rng = np.random.default_rng(seed)
    folds = fold_of[rows]
    picked = [rng.choice(rows[folds == k], max(1, round(size * np.mean(folds == k))), replace=False)
              for k in np.unique(folds)]
    return np.sort(np.concatenate(picked))
