"""Stage `ensemble`: many models into one honest blend, chosen on OOF predictions only
(docs/recipe.md 7).

Candidates, from every training stage with models for every fold: its fold models (the
best epoch), a checkpoint ensemble of each fold's top epochs (``snapshots``), the SWA mean
and the EMA of each fold's weights (BatchNorm statistics recomputed on the fold's training
rows), and the stage's ``baseline.variants`` (gradient boosting on tables, ...); stage bag's
candidate is each fold's mean of several seeds' models. Each
candidate is scored on OOF rows as it is and with test-time views (``predict.tta``); the
views are kept for a candidate only where they improve its OOF score.

Blend weights come from greedy ensemble selection (``comp.blending``) on the OOF rows; the
blend replaces the best single candidate only when its nested score beats it beyond one
standard error (``comp.selection``). Every one of these choices (views, candidate, weights,
blend or single) is made on all rows for the test set, and made again for each fold on the
other folds only: that nested score, on the folds no search chose on, is the published one
(``score``); the all-rows number is kept beside it (``score_all_rows``). Nothing here reads
the test set: stage ``predict`` applies the members recorded here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from comp import artifacts, clock
from comp.budget import Share
from comp.context import StageContext
from comp.errors import ConfigError
from comp.files import write_csv, write_json, write_npy
from comp.modalities import modality_of
from comp.records import Member, ModelRef
from comp.stages.training import check_views, variant_names

NAME = "ensemble"
HELP = "blend the training stages' models (fold models, top epochs, SWA, EMA, variants, TTA) with weights chosen on OOF"
CONFIG = ("ensemble", "predict.tta", "predict.batch_size", "data.on_bad_image", "split.group_column")
TRAINS = False
# Half of what is left when it starts, or more: all the training stages left (the run plan
# keeps some for it); prediction, submission and the report get the rest.
TIME = Share(of_remaining=0.5, after_training=True)
LOAD_SECONDS = 1.0  # a fold's candidate loaded, built and its prediction traced (measured: digits, 1-4 s)
KINDS = ("fold", "snapshots", "swa", "ema", "variants")
# The training setting that keeps each kind's weights (0: none kept).
WEIGHTS_KEPT_BY = {"snapshots": "snapshots", "swa": "swa_epochs", "ema": "keep_ema"}
TABLE = "candidates.csv"
STACKER = "stacker.pkl"  # the level-2 model, when stacking beat the blend (comp.stacking)
CANDIDATES_DIR = "candidates"  # the chosen SWA/EMA members' weights with recalibrated BatchNorm statistics


def least_seconds(cfg, fold_seconds: float, epochs: int, folds: int) -> list[float]:
    """The run plan's question: what scoring the fold models with their test-time views
    costs, and what scoring every candidate kind does (a view: a forward pass over the
    fold's validation rows, ~8% of an epoch); the plan keeps the larger where it fits."""
    kinds = [k for k in cfg.ensemble.candidates if k != "variants"]
    tta = cfg.predict.tta
    views = 4 if tta == "auto" else len(tta) if isinstance(tta, list) else max(int(tta), 1)
    epoch = max(fold_seconds, 0.0) / max(epochs, 1)
    one_kind = folds * (LOAD_SECONDS + views * 0.08 * epoch)
    return [one_kind, one_kind * max(len(kinds), 1)]


def model_seconds(cfg, pass_seconds: float) -> float:
    """What one more fold model of a candidate adds to this stage: loaded, then a pass over
    its fold's validation rows (``pass_seconds``) for each view and each probe."""
    from comp.stages.predict import forecast_views

    return LOAD_SECONDS + (forecast_views(cfg) + 2) * max(pass_seconds, 0.0)  # the probes: the two flips


def inputs(cfg, available, training=()) -> dict[str, str]:
    finished = [name for name in training if name in available]
    return {"split": "split", **{name: name for name in finished or list(training)[:1]}}


def validate(cfg, competition, task) -> None:
    """``ensemble.candidates`` and a named ``predict.tta`` list, before any work."""
    chosen = list(cfg.ensemble.candidates)
    unknown = [c for c in chosen if c not in KINDS]
    if unknown or not chosen:
        raise ConfigError(f"ensemble.candidates={chosen}: list some of {', '.join(KINDS)}"
                          + (f" ({', '.join(map(str, unknown))} unknown)" if unknown else ""))
    # Weight sets are kept only when training keeps them: a list of kinds none of which will
    # exist is refused now, not after every training stage has run.
    kept = {kind: getattr(cfg.train, key) for kind, key in WEIGHTS_KEPT_BY.items()}
    kept["variants"] = variant_names(cfg, competition, task)
    if not any(kind not in kept or kept[kind] for kind in chosen):
        off = ", ".join(f"{'train.' + WEIGHTS_KEPT_BY[kind] if kind in WEIGHTS_KEPT_BY else 'baseline.variants'}="
                        f"{kept[kind]}" for kind in chosen)
        raise ConfigError(f"ensemble.candidates={chosen}: training keeps none of these weights ({off}); add fold "
                          "(the fold models) or turn one on")
    check_views(cfg, competition, task)


@dataclass
class Candidate:
    name: str  # baseline, baseline:swa, baseline/hgb (a variant), tune:snapshots, ...
    stage: str
    kind: str  # fold | snapshots | swa | ema
    root: Path  # the published folder holding fold_k/
    model: dict  # name, hp, augmentations
    input_shape: tuple | None
    sets: list[str] = field(default_factory=list)  # weight sets per fold (not for kind fold)
    plain: np.ndarray | None = None  # OOF predictions without views
    tta: np.ndarray | None = None  # OOF predictions averaged over the original and the views
    views: list[str] = field(default_factory=list)  # the views evaluated; once decided, those kept
    keep_tta: bool = False  # the views improved this candidate's OOF score: prediction uses them
    probes: dict = field(default_factory=dict)  # probe view (a flip) -> OOF predictions with it alone
    files: list[list[ModelRef]] = field(default_factory=list)  # per fold: its models
    derived: dict = field(default_factory=dict)  # fold -> set -> recalibrated weights (swa, ema)
    seconds: float = 0.0
    dropped: str = ""  # why it was not evaluated on every fold (the budget)
    paths: list[list[str]] = field(default_factory=list)  # per fold, the models averaged (stage bag); empty: root's
    passes: dict = field(default_factory=dict)  # kind fold: model path -> its (plain, with views, probes) on its fold


def collect(ctx: StageContext, n_folds: int) -> list[Candidate]:
    """Every candidate the training stages left, filtered by ``ensemble.candidates``."""
    from comp.training.averaging import WEIGHTS_INFO

    wanted = set(ctx.cfg.ensemble.candidates)
    found: list[Candidate] = []
    for stage in ctx.upstream.values():
        if stage == "split":
            continue
        result = ctx.rundir.result(stage)
        if not result.fold_models or result.folds != n_folds:
            continue  # regularize keeps no fold models; a stage on other folds cannot be blended by fold
        root = ctx.rundir.output(stage)
        shape = tuple(result.input_shape) if result.input_shape else None
        if "fold" in wanted:
            found.append(Candidate(stage, stage, "fold", root, result.model, shape, paths=result.fold_paths))
        infos = [root / artifacts.FOLD_DIR.format(fold=k) / WEIGHTS_INFO for k in range(n_folds)]
        if all(p.is_file() for p in infos):
            import json

            kept = [set(json.loads(p.read_text())) for p in infos]
            common = set.intersection(*kept)
            snapshots = sorted((s for s in common if s.startswith("snapshot_")), key=lambda s: int(s.split("_")[1]))
            for kind, sets in (("snapshots", snapshots), ("swa", ["swa"] if "swa" in common else []),
                               ("ema", ["ema"] if "ema" in common else [])):
                if kind in wanted and sets:
                    found.append(Candidate(f"{stage}:{kind}", stage, kind, root, result.model, shape, sets))
        elif any(p.is_file() for p in infos):
            ctx.log(f"{stage}: some of its folds kept no epoch weights (reused from a search trial that kept "
                    "none): no snapshot, SWA or EMA candidates from it")
        if "variants" in wanted:
            for name, variant in result.variants.items():
                found.append(Candidate(f"{stage}/{name}", stage, "fold",
                                       root / artifacts.VARIANT_DIR.format(name=name), variant.model, shape))
    return found


def _training_seconds(cand: Candidate) -> float:
    """What the model behind a fold-model candidate cost to train, a fold on average (its
    cv.json); nan for the weight sets a fold kept (they cost nothing more) or where unknown."""
    from comp.training.cv import mean_fold_seconds

    return round(mean_fold_seconds(cand.root), 2) if cand.kind == "fold" else math.nan


class Data:
    """Train inputs per input shape (a tuned resolution differs from the baseline's), loaded once."""

    def __init__(self, ctx: StageContext):
        self.ctx, self.cache = ctx, {}

    def get(self, shape):
        from comp.data.loading import load_inputs

        if shape not in self.cache:
            self.cache[shape] = load_inputs(self.ctx.competition, "train", self.ctx.cfg.reading(), geometry=shape)[0]
        return self.cache[shape]


def _pass_seconds(fm, inputs, rows: np.ndarray, task, batch: int) -> float:
    """Seconds one prediction pass over ``rows`` should take: one batch timed after a first
    one (which traces), scaled. Before any candidate has run a fold, so that a candidate that
    cannot finish in time is not given a fold to find out."""
    sample = rows[:batch]
    fm.predictions(inputs, sample, task, batch)
    began = clock.now()
    fm.predictions(inputs, sample, task, batch)
    return (clock.now() - began) * len(rows) / max(len(sample), 1)


def evaluate(ctx: StageContext, candidates: list[Candidate], data: Data, y: np.ndarray, fold_of: np.ndarray,
             deadline: float = math.inf) -> list[Candidate]:
    """OOF predictions of every candidate with and without its test-time views, and the
    model references that predict the test set the same way; returns the candidates
    evaluated on every fold. Each fold model is loaded once for all the candidates made
    from it.

    Under a ``deadline`` candidates are kept in order while the folds left of them and of
    the candidates before them fit (a candidate's time per fold so far, or before its first
    fold its passes over the rows times the last measured time per pass, at first one
    batch's time scaled to the fold's rows); one that does
    not is dropped before it spends more. A stage's plain fold models then stand without
    views (their OOF is the stage's own)."""
    import keras

    from comp.augmentation import probe_views, views_for
    from comp.errors import CompError
    from comp.failures import is_part_failure
    from comp.training.averaging import assign, load_weight_sets, recalibrate_batchnorm
    from comp.training.cv import fit_rows
    from comp.training.fold_model import load_fold_model

    task, cfg, batch = ctx.task, ctx.cfg, ctx.cfg.predict.batch_size
    n_folds = int(fold_of.max()) + 1
    groups: dict[Path, list[Candidate]] = {}
    def own_oof(cand: Candidate) -> None:
        """A stage's plain fold models as they stand: its own OOF predictions, no model to load."""
        relative = cand.root.relative_to(ctx.rundir.path).as_posix()
        cand.plain, cand.tta, cand.views, cand.probes = np.load(cand.root / artifacts.OOF_PROBS), None, [], {}
        cand.files = ([[ModelRef(path) for path in paths] for paths in cand.paths] if cand.paths else
                      [[ModelRef(f"{relative}/{artifacts.FOLD_DIR.format(fold=k)}")] for k in range(n_folds)])

    bags = []  # several models a fold: each model through the views, then averaged
    for cand in candidates:
        if cand.kind == "fold" and (cfg.predict.tta == 1 or not modality_of(ctx.competition).test_views):
            own_oof(cand)  # no views to try
        elif cand.paths:
            bags.append(cand)
        else:
            groups.setdefault(cand.root, []).append(cand)
    per_pass = 0.0  # seconds of one pass over a fold's rows (a prediction, a view, a recalibration), last measured
    tried_views: set[str] = set()
    broken_views: set[str] = set()  # views that raised on their first rows: left out

    def passes(cand: Candidate, views: int) -> int:
        return len(cand.sets or [None]) * (1 + views + (cand.kind in ("swa", "ema")))

    # predict.tta=auto or N also probes the views the policy left out (flips): kept where the
    # OOF score says they keep this competition's labels (run); a list of views is taken as is.
    probing = cfg.predict.tta == "auto" or (isinstance(cfg.predict.tta, int) and cfg.predict.tta > 1)

    for root, group in groups.items():
        group.sort(key=lambda c: c.kind != "fold")  # the fold model's own weights first, before any are replaced
        inputs = data.get(group[0].input_shape)
        relative = root.relative_to(ctx.rundir.path).as_posix()
        for k in range(n_folds):
            if all(c.dropped for c in group):
                break
            rows = np.flatnonzero(fold_of == k)
            fold_dir = root / artifacts.FOLD_DIR.format(fold=k)
            folder = f"{relative}/{artifacts.FOLD_DIR.format(fold=k)}"
            began = clock.now()
            fm = load_fold_model(fold_dir)
            views, probes = [], []
            if fm.is_keras and modality_of(ctx.competition).test_views:
                policy = group[0].model.get("augmentations", [])
                # A view (a plugin's) that raises on its first rows is left out once, for every
                # candidate (the next one offered takes its place), not each candidate that would
                # have used it. Tried on the first model it meets: one that fails only on another
                # stage's input shape is left out there too.
                while True:
                    views = views_for(policy, inputs.spec(), task.kind, cfg.predict.tta, leave_out=broken_views)
                    probes = [v for v in probe_views(policy, inputs.spec(), task.kind)
                              if v.name not in broken_views] if probing else []
                    untried = [v for v in views + probes if v.name not in tried_views]
                    if not untried:
                        break
                    for v in untried:
                        tried_views.add(v.name)
                        try:
                            fm.outputs(inputs, rows[:2], task, batch, v)
                        except Exception as exc:
                            if not is_part_failure(exc):
                                raise
                            broken_views.add(v.name)
                            ctx.failed(f"test-time view {v.name}", exc)
            weights = load_weight_sets(fold_dir)[0] if any(c.sets for c in group) else {}
            shared = clock.now() - began
            if per_pass == 0.0 and deadline < math.inf:
                per_pass = _pass_seconds(fm, inputs, rows, task, batch)
            committed = 0.0  # seconds the candidates kept so far still need, this fold included
            for cand in group:
                if cand.dropped:
                    continue
                per_fold = cand.seconds / k if k else passes(cand, len(views) + len(probes)) * per_pass
                if clock.now() + committed + per_fold * (n_folds - k) > deadline:
                    cand.dropped = ("the budget was spent before the ensemble" if deadline <= clock.now()
                                    else f"~{per_fold:.0f}s per fold for {n_folds - k} more fold(s) did not fit "
                                         "the ensemble's share of the budget")
                    continue
                committed += per_fold * (n_folds - k)
                try:
                    began = clock.now()
                    cand.views = [v.name for v in views]
                    refs, p_sum, t_sum, q_sums = [], 0.0, 0.0, {}
                    for name in cand.sets or [None]:
                        if name is None:
                            refs.append(ModelRef(folder))
                        else:
                            _check_fits(fm.model, weights[name], fold_dir, name)
                            assign(fm.model, weights[name])
                            kept = folder
                            if cand.kind in ("swa", "ema"):  # averaged weights have no BatchNorm statistics of their own
                                recalibrate_batchnorm(fm.model, inputs.rows(fit_rows(fold_of, k)), batch,
                                                      seed=cfg.seed + k)
                                cand.derived.setdefault(k, {})[name] = [v.numpy() for v in fm.model.variables]
                                kept = f"{NAME}/{CANDIDATES_DIR}/{_safe(cand.name)}/{artifacts.FOLD_DIR.format(fold=k)}"
                            refs.append(ModelRef(folder, kept, name))
                        p_sum, t_sum = _add_passes(fm, inputs, rows, task, batch, views, probes, p_sum, t_sum, q_sums)
                    _store(cand, len(y), rows, refs, p_sum, t_sum, q_sums, bool(views))
                    if not cand.sets:  # a bag built on these fold models reuses their passes
                        cand.passes[folder] = (p_sum, t_sum, dict(q_sums), cand.views)
                    spent = clock.now() - began + shared / len(group)
                    per_pass = spent / passes(cand, len(views) + len(probes))
                    cand.seconds += spent
                    # this fold is done (the clock has moved on): the folds after it, at its measured pace
                    committed += cand.seconds / (k + 1) * (n_folds - k - 1) - per_fold * (n_folds - k)
                except CompError:
                    raise  # a damaged file or a wrong input: named and fixed by the user, not left out
                except Exception as exc:  # a candidate (its weights, a view) that cannot run is left out
                    cand.dropped = f"failed: {ctx.failed(f'candidate {cand.name} on fold {k + 1}', exc)}"
                    committed -= per_fold * (n_folds - k)
                    if fm.is_keras and cand.sets:  # another candidate's weights may be half assigned
                        fm = load_fold_model(fold_dir)
            if fm.is_keras:
                keras.backend.clear_session()
    done = {path: passed for cand in candidates for path, passed in cand.passes.items()}
    for cand in bags:
        _evaluate_bag(ctx, cand, data, fold_of, deadline, broken_views, probing, per_pass, done)
    kept = []
    for cand in candidates:
        if cand.dropped and cand.kind == "fold":  # the stage's own OOF, no model to run
            own_oof(cand)
            ctx.log(f"{cand.name}: test-time views not tried ({cand.dropped})")
        elif cand.dropped:
            ctx.log(f"{cand.name}: not evaluated ({cand.dropped})")
            continue
        kept.append(cand)
    return kept


def _add_passes(fm, inputs, rows, task, batch: int, views: list, probes: list, p_sum, t_sum, q_sums: dict):
    """One model's predictions on ``rows`` added to the sums: plain, averaged with ``views``
    (into ``t_sum``), and each probe view alone (into ``q_sums``)."""
    p = fm.predictions(inputs, rows, task, batch).astype(np.float64)
    if views:
        t_sum = t_sum + (p + sum(task.predictions(fm.outputs(inputs, rows, task, batch, v)).astype(np.float64)
                                 for v in views)) / (1 + len(views))
    for v in probes:
        q_sums[v.name] = q_sums.get(v.name, 0.0) + task.predictions(
            fm.outputs(inputs, rows, task, batch, v)).astype(np.float64)
    return p_sum + p, t_sum


def _store(cand: Candidate, n_rows: int, rows: np.ndarray, refs: list[ModelRef], p_sum, t_sum, q_sums: dict,
           views: bool) -> None:
    """A fold's sums over its ``refs`` as the candidate's OOF predictions on ``rows``."""
    if cand.plain is None:
        cand.plain = np.zeros((n_rows, *p_sum.shape[1:]), dtype=np.float32)
        cand.tta = np.zeros_like(cand.plain) if views else None
    cand.plain[rows] = p_sum / len(refs)
    if views:
        cand.tta[rows] = t_sum / len(refs)
    for name, q_sum in q_sums.items():
        cand.probes.setdefault(name, np.zeros_like(cand.plain))[rows] = q_sum / len(refs)
    cand.files.append(refs)


def _evaluate_bag(ctx: StageContext, cand: Candidate, data: Data, fold_of: np.ndarray, deadline: float,
                  broken_views: set, probing: bool, per_pass: float, done: dict) -> None:
    """A candidate of several models a fold (stage bag): each model with the views, averaged
    per fold; a model another candidate already ran through the same views (``done``: model
    path -> its passes) is not run again. Dropped (its own OOF stands, without views) when
    its folds do not fit ``deadline`` at the pace measured so far (``per_pass``: one pass over
    a fold's rows), or when it fails."""
    import keras

    from comp.augmentation import probe_views, views_for
    from comp.errors import CompError
    from comp.training.fold_model import load_fold_model

    task, cfg, batch = ctx.task, ctx.cfg, ctx.cfg.predict.batch_size
    inputs = data.get(cand.input_shape)
    policy = cand.model.get("augmentations", [])
    views = views_for(policy, inputs.spec(), task.kind, cfg.predict.tta, leave_out=broken_views)
    probes = [v for v in probe_views(policy, inputs.spec(), task.kind) if v.name not in broken_views] if probing else []
    names = [v.name for v in views]
    reusable = {path: passed for path, passed in done.items()
                if passed[3] == names and set(passed[2]) == {v.name for v in probes}}
    # What the folds still to evaluate cost: their models not run yet, at the pace measured so far.
    to_run = [sum(path not in reusable for path in paths) for paths in cand.paths]
    pace = (1 + len(views) + len(probes)) * per_pass  # seconds a model, until one is timed here
    for k, paths in enumerate(cand.paths):
        if clock.now() + pace * sum(to_run[k:]) > deadline:
            cand.dropped = (f"~{pace * sum(to_run[k:]):.0f}s for {sum(to_run[k:])} more model(s) did not fit the "
                            "ensemble's share")
            return
        rows = np.flatnonzero(fold_of == k)
        began = clock.now()
        try:
            p_sum, t_sum, q_sums, refs = 0.0, 0.0, {}, []
            for path in paths:
                refs.append(ModelRef(path))
                if path in reusable:
                    p, t, q, _ = reusable[path]
                    p_sum, t_sum = p_sum + p, t_sum + t
                    for name, value in q.items():
                        q_sums[name] = q_sums.get(name, 0.0) + value
                    continue
                fm = load_fold_model(ctx.rundir.path / path)
                if not fm.is_keras:  # an estimator has no test-time views
                    views, probes = [], []
                p_sum, t_sum = _add_passes(fm, inputs, rows, task, batch, views, probes, p_sum, t_sum, q_sums)
                if fm.is_keras:
                    keras.backend.clear_session()
        except CompError:
            raise
        except Exception as exc:  # a model or view that cannot run leaves the candidate out
            cand.dropped = f"failed: {ctx.failed(f'candidate {cand.name} on fold {k + 1}', exc)}"
            return
        cand.views = [v.name for v in views]
        _store(cand, len(fold_of), rows, refs, p_sum, t_sum, q_sums, bool(views))
        spent = clock.now() - began
        cand.seconds += spent
        if to_run[k]:
            pace = spent / to_run[k]


def save_derived(ctx: StageContext, cand: Candidate) -> None:
    """The recalibrated weights of a chosen SWA or EMA candidate, one file per fold."""
    from comp.training.averaging import save_weight_sets

    for k, sets in cand.derived.items():
        folder = ctx.work / CANDIDATES_DIR / _safe(cand.name) / artifacts.FOLD_DIR.format(fold=k)
        folder.mkdir(parents=True, exist_ok=True)
        save_weight_sets(folder, sets, {name: {"kind": "average", "batchnorm": "recalibrated"} for name in sets})


def _check_fits(model, weights: list, fold_dir: Path, name: str) -> None:
    shapes = [tuple(v.shape) for v in model.variables]
    if len(shapes) != len(weights) or any(s != tuple(w.shape) for s, w in zip(shapes, weights)):
        raise ConfigError(f"{fold_dir}/weights.npz: weight set {name} does not fit {fold_dir}/model.keras; "
                          "rerun the training stage (overwrite=true)")


def _safe(name: str) -> str:
    return name.replace("/", "-").replace(":", "-")


def run(ctx: StageContext) -> dict:
    from comp.selection import Option, Scoring, apply, choose, nested, prediction
    from comp.stacking import can_stack
    from comp.significance import standard_error
    from comp.stages.training import load_targets, read_folds

    task, comp, cfg = ctx.task, ctx.competition, ctx.cfg
    fold_of = read_folds(ctx)
    y = load_targets(ctx)
    n_folds = int(fold_of.max()) + 1
    scored = fold_of >= 0
    rows = np.flatnonzero(scored)

    def honest(pred, where=scored) -> tuple[dict, float]:
        return task.fit_decoding(y[where], pred[where], fold_of[where])

    candidates = collect(ctx, n_folds)
    if not candidates:
        raise ConfigError(f"ensemble: no training stage among {', '.join(ctx.upstream)} has models for all "
                          f"{n_folds} folds of the kinds ensemble.candidates={list(cfg.ensemble.candidates)}")
    evaluated = evaluate(ctx, candidates, Data(ctx), y, fold_of, ctx.time.end)  # its share of a budget (TIME)
    kept = {c.name for c in evaluated}
    dropped = [c.name for c in candidates if c.name not in kept]
    if not evaluated:
        raise ConfigError(f"ensemble: no candidate could be evaluated within the budget ({'; '.join(dropped)}); "
                          "add fold to ensemble.candidates or raise budget")
    candidates = evaluated
    options = [Option(c.name, c.plain, c.tta, len(c.views), c.probes) for c in candidates]
    scoring = Scoring(fold_of, lambda idx, pred: task.score(y[idx], pred), task.objective, cfg.ensemble.rounds)
    sample = _choice_rows(ctx, options, rows, scoring)  # every row, or a sample sized to the stage's time
    sampled = len(sample) < len(rows)
    chosen = choose(options, sample, scoring)  # what the test set gets: chosen on every row (or the sample)
    honest_oof, per_fold = nested(options, scoring, sample)  # what it is worth: each fold chosen on the others

    rows_out, chosen_oof = [], []
    for i, cand in enumerate(candidates):
        pred = prediction(options[i], chosen.keep_tta[i], chosen.probes[i])
        chosen_oof.append(pred)
        cand.keep_tta = chosen.keep_tta[i]
        for name, note in zip(cand.probes, chosen.probe_notes[i].split("; ")):
            ctx.log(f"{cand.name}: probe view {note}" + (" (its labels survive this view here)"
                                                         if name in chosen.probes[i] else ""))
        if cand.probes:  # the views the test set gets: the kept ones and the probes that raised the score
            cand.views = (list(cand.views) if cand.keep_tta else []) + chosen.probes[i]
            cand.keep_tta = bool(cand.views)
        plain_score = honest(cand.plain)[1]
        tta_score = honest(cand.tta)[1] if cand.tta is not None else None
        fold_scores = scoring.fold_scores(rows, pred)
        rows_out.append({"candidate": cand.name, "kind": cand.kind, "oof": plain_score,
                         "oof_tta": tta_score if tta_score is not None else np.nan,
                         "tta": ("kept" if chosen.keep_tta[i] else "not better") if tta_score is not None else "none",
                         "views": len(cand.views), "probes": chosen.probe_notes[i], "oof_used": honest(pred)[1],
                         "fold_std": float(np.std(fold_scores)), "seconds": round(cand.seconds, 1),
                         "train_s_per_fold": _training_seconds(cand)})
        ctx.log(f"{cand.name}: OOF {task.metric_name} {plain_score:.5f}"
                + (f", with {len(cand.views)} test-time views {tta_score:.5f} ({rows_out[-1]['tta']})"
                   if tta_score is not None else "") + f" ({cand.seconds:.0f}s)")
    best = chosen.single
    if chosen.blend_nested is not None:
        ctx.log(f"blend by greedy selection ({scoring.rounds} rounds): OOF {chosen.blend_score:.5f} with weights "
                f"chosen on {f'the {len(sample)} sampled rows (this line scored on them)' if sampled else 'all OOF rows'}, "
                f"{chosen.blend_nested:.5f} nested (each fold's weights from the other "
                f"folds); best single candidate {candidates[best].name} {chosen.singles[best]:.5f}"
                + (" (the simplest within one standard error of the best)"
                   if best != task.objective.best_index(chosen.singles) else "")
                # the choice compares raw probabilities; the candidates' lines are after their calibration
                + ("; these scores before any calibration" if task.metric.needs == "scores" else ""))
    used, weights = chosen.used, chosen.weights
    final_oof = apply(chosen, options)
    decoding, score_all_rows = honest(final_oof)

    # The published number: the whole procedure nested, on the folds whose own choice uses no
    # candidate a search chose on that fold (a tuned configuration flatters its selection folds,
    # however it is blended). Whether a fold counts depends only on its choice, made without its
    # labels, so the folds kept are no lucky pick.
    selected = {c.name: set(ctx.rundir.result(c.stage).extra.get("selected_on", [])) for c in candidates}
    clean_folds = [k for k, choice in enumerate(per_fold)
                   if not any(w > 0 and k in selected[c.name] for c, w in zip(candidates, choice.weights))]
    if not clean_folds:
        ctx.log("warning: on every fold the ensemble's choice uses a model configured on that fold's labels (a "
                "search over every fold): its OOF score is optimistic")
        clean_folds = list(range(n_folds))
    clean = np.isin(fold_of, clean_folds)
    fold_scores, _ = _fold_scores(task, y, honest_oof, fold_of, n_folds)
    score = honest(honest_oof, clean)[1]
    stack = None
    if cfg.ensemble.stack and len(candidates) > 1 and can_stack(task):
        stack = _try_stack(ctx, chosen_oof, y, fold_of, fold_scores, score, len(clean_folds) == n_folds)
    if stack and stack["kept"]:
        used, weights = "stack", np.full(len(candidates), 1.0 / len(candidates))
        honest_oof, fold_scores, score = stack.pop("fit").oof, stack["fold_scores"], stack["score"]
        decoding, _ = honest(honest_oof)  # the test set's stacked predictions are like its nested OOF ones
        score_all_rows = task.score(y[scored], stack.pop("in_sample")[scored], decoding)
    se = standard_error([fold_scores[k] for k in clean_folds])
    for r, w in zip(rows_out, weights):
        r["weight"] = round(float(w), 4)
    chosen_on = f"the {len(sample)} sampled OOF rows" if sampled else "all OOF rows"
    extra_rows = [{"candidate": f"the {used} chosen on {chosen_on}", "kind": "result", "oof": score_all_rows},
                  {"candidate": "honest: every choice nested", "kind": "result", "oof": score,
                   "fold_std": float(np.std([fold_scores[k] for k in clean_folds]))}]
    if chosen.blend_nested is not None:
        extra_rows = [{"candidate": "blend (weights on the sample, scored on it)" if sampled else
                       "blend (weights on all OOF)", "kind": "blend", "oof": chosen.blend_score},
                      {"candidate": "blend (nested)", "kind": "blend", "oof": chosen.blend_nested}] + extra_rows
    if stack:
        extra_rows = [{"candidate": f"stack: {stack['model']} (nested)", "kind": "result", "oof": stack["score"],
                      "fold_std": float(np.std(stack["fold_scores"]))}] + extra_rows
    write_csv(ctx.work / TABLE, pd.DataFrame(rows_out + extra_rows))
    members = [(c, float(w)) for c, w in zip(candidates, weights) if w > 0]
    for cand, _ in members:
        save_derived(ctx, cand)

    write_npy(ctx.work / artifacts.OOF_PROBS, honest_oof)
    write_json(ctx.work / artifacts.DECODING, decoding)
    write_csv(ctx.work / artifacts.OOF_TABLE, pd.DataFrame({
        comp.id_col: comp.train[comp.id_col], "fold": fold_of,
        comp.target_cols[0] if len(comp.target_cols) == 1 else "target": task.truth_strings(comp.train[comp.target_cols]),
        "prediction": task.decode(honest_oof, decoding),
    }))
    described = ", ".join(f"{c.name} {w:.2f}" + (f" (+{len(c.views)} views)" if c.keep_tta else "")
                          for c, w in members)
    folds_note = ("" if len(clean_folds) == n_folds else
                  f" on folds {', '.join(str(k + 1) for k in clean_folds)}; the others chose a configuration searched "
                  "on their own labels")
    if used == "stack":
        described = f"a {stack['model']} on {len(members)} candidates' predictions ({described})"
    ctx.log(f"{'blend' if used == 'blend' else 'stack' if used == 'stack' else 'best single candidate'}: {described}; OOF {task.metric_name} "
            f"{score:.5f} +- {se:.5f} honest (every choice made on the other folds{folds_note}); "
            f"{score_all_rows:.5f} with the choices made on {'the sample' if sampled else 'all rows'}")
    single_plain = used == "single" and members[0][0].kind == "fold" and not members[0][0].keep_tta
    first = members[0][0]
    record = {
        "score": score,
        "score_se": se,
        "score_all_rows": score_all_rows,
        "honest_folds": clean_folds,
        "metric": task.metric_name,
        "higher_is_better": task.higher_is_better,
        "scores": task.honest_scores(y[clean], honest_oof[clean], fold_of[clean]),
        "fold_scores": fold_scores,
        "folds": n_folds,
        "decoding": decoding,
        "fold_models": True,
        "not_evaluated": dropped,  # candidates the budget left out
        "choice_rows": int(len(sample)),  # the rows its choices were made on (a sample of the OOF rows under a budget)
        "choice_rounds": scoring.rounds,  # the greedy blend's rounds (fewer than ensemble.rounds where time was short)
        "task": task.kind,
        # what made the prediction: the submission's name says it (one stage's plain fold models: that stage)
        "source": first.stage if single_plain and "/" not in first.name else NAME,
        "members": [Member(c.name, c.stage, c.kind, w, c.views if c.keep_tta else [],
                           list(c.model.get("augmentations", [])), list(c.input_shape) if c.input_shape else None,
                           c.files).to_dict()
                    for c, w in members],
        "blend": {"used": used, "nested_score": chosen.blend_nested, "full_score": chosen.blend_score,
                  "best_single": candidates[best].name, "best_single_score": chosen.singles[best],
                  "candidates": {c.name: r["oof_used"] for c, r in zip(candidates, rows_out)},
                  "per_fold": [{"used": c.used, "single": candidates[c.single].name} for c in per_fold]},
    }
    if stack:  # predict feeds the stacker its inputs in this order
        record["stack"] = {**{k: v for k, v in stack.items() if k not in ("fit", "in_sample")},
                           "inputs": [c.name for c in candidates]}
    record["scores"][task.metric_name] = score
    if first.input_shape:
        record["input_shape"] = list(first.input_shape)
    return record


CHOICE_SHARE = 0.5  # of the ensemble's time left after evaluating its candidates: what its choices may spend


def _choice_rows(ctx, options, rows: np.ndarray, scoring) -> np.ndarray:
    """The rows the ensemble's choices are made on: every scored row, or under a budget, where
    scoring the metric on every row for each of the choices' calls would not fit
    ``CHOICE_SHARE`` of the stage's time, a seeded sample of them, each fold's share, and
    where even the smallest sample does not fit, fewer greedy rounds (set on ``scoring``;
    comp.selection)."""
    from comp.selection import MIN_CHOICE_ROWS, choice_size, metric_calls, sample_rows

    if not ctx.time.limited or len(rows) <= MIN_CHOICE_ROWS:
        return rows
    small = sample_rows(rows, scoring.fold_of, MIN_CHOICE_ROWS, ctx.cfg.seed)
    scoring.score(small, options[0].plain)  # a first call pays the metric's imports and caches
    timed = []
    for part in (small, rows):  # each the faster of two calls: a single one can catch a pause
        seconds = []
        for _ in range(2):
            began = clock.now()
            scoring.score(part, options[0].plain)
            seconds.append(clock.now() - began)
        timed += [min(seconds), len(part)]
    folds, rounds = int(scoring.fold_of[rows].max()) + 1, scoring.rounds
    seconds = CHOICE_SHARE * max(ctx.time.remaining(), 0.0)
    size, scoring.rounds = choice_size(len(rows), options, folds, rounds, seconds, tuple(timed))
    if size < len(rows) or scoring.rounds < rounds:
        fewer = f" and {scoring.rounds} of ensemble.rounds={rounds} greedy rounds" if scoring.rounds < rounds else ""
        ctx.log(f"choices made on {size} of the {len(rows)} OOF rows (a seeded sample, each fold's share){fewer}: "
                f"~{metric_calls(options, folds, rounds)} metric calls at ~{timed[2] * 1000:.0f} ms on every row would "
                f"not fit the {seconds:.0f}s they have; the published OOF scores are on every row")
    return sample_rows(rows, scoring.fold_of, size, ctx.cfg.seed)


def _fold_scores(task, y, pred, fold_of, n_folds: int) -> tuple[list[float], dict[int, dict]]:
    """Each fold's score of ``pred``, its rows decoded by parameters fit on the other folds,
    and those parameters."""
    scored = fold_of >= 0
    decodings = task.fold_decodings(y[scored], pred[scored], fold_of[scored])
    return [task.score(y[fold_of == k], pred[fold_of == k], decodings.get(k)) for k in range(n_folds)], decodings


def _try_stack(ctx, predictions: list, y, fold_of, blend_folds: list[float], blend_score: float,
               every_fold_clean: bool) -> dict | None:
    """A level-2 model on the candidates' OOF ``predictions`` (as the blend uses them), fit
    per fold on the other folds, against the blend's nested score on the same folds: kept
    when the paired gain beats the noise (a one-sided t-test at the searches' false-keep
    rate). Its stacker is written when kept; the record says what it scored either way."""
    from comp import stacking
    from comp.significance import beats, critical_t, paired_noise, standard_error
    from comp.training.cv import HISTORY

    task, n_folds = ctx.task, len(blend_folds)
    if not every_fold_clean:  # a configuration searched on a fold's labels flatters that fold's level-1 inputs
        ctx.log("stacking: not tried, a search chose a candidate on some folds' labels")
        return None
    if (fold_of == HISTORY).any():  # a stacker fit on the other folds would learn from the window's future
        ctx.log("stacking: not tried, the folds run forward in time")
        return None
    if ctx.time.limited and ctx.time.remaining() <= 0:
        ctx.log("stacking: not tried, the ensemble's share of the budget is spent")
        return None
    began = clock.now()
    fit = stacking.fit(task, predictions, y, fold_of)
    scored = fold_of >= 0
    fold_scores, decodings = _fold_scores(task, y, fit.oof, fold_of, n_folds)
    score = task.cross_fitted(y[scored], fit.oof[scored], fold_of[scored], decodings)  # as fit_decoding scores it
    gain = float(task.objective.gain(score, blend_score))
    noise = paired_noise(fold_scores, blend_folds, task.objective)
    needed = critical_t(n_folds)
    kept = beats(gain, noise, needed)
    model = stacking.describe(task)
    ctx.log(f"stacking: a {model} on the {len(predictions)} candidates' OOF predictions, each fold's fit on the "
            f"other folds: OOF {task.metric_name} {score:.5f} +- {standard_error(fold_scores):.5f} against the "
            f"ensemble's {blend_score:.5f} (gain {gain:+.5f}, noise {noise:.5f}, needs > {needed:.2f} SE): "
            f"{'kept' if kept else 'not kept'} ({clock.now() - began:.1f}s)")
    if kept:
        stacking.save(ctx.work / STACKER, fit.model)
    return {"kept": kept, "model": model, "score": score, "gain": gain, "noise": noise, "needed": needed,
            "fold_scores": fold_scores, "file": STACKER if kept else None, "fit": fit, "in_sample": fit.in_sample,
            "seconds": round(clock.now() - began, 2)}


def _report_candidates(run) -> str:
    """The candidates with and without their views, the blend and what was chosen."""
    import html

    from comp.html import missing, note, table

    path = run.folder(NAME) / TABLE
    result = run.result(NAME)
    if result is None or not path.is_file():
        return missing(NAME)
    frame = pd.read_csv(path)
    blend = result.extra.get("blend", {})
    members = ", ".join(f"{m.name} {m.weight:.2f}" + (f" with {len(m.views)} views" if m.views else "")
                        for m in result.members)
    tta = frame[frame["kind"] != "blend"]
    effect = ""
    if "oof_tta" in tta and tta["oof_tta"].notna().any():
        effect = note("TTA effect (OOF with views - without): " + ", ".join(
            f"{r.candidate} {r.oof_tta - r.oof:+.5f}" for r in tta.itertuples() if not pd.isna(r.oof_tta)))
    used = blend.get("used")
    return (f"<p>Result: {used if used in ('blend', 'stack') else 'best single candidate'}: "
            f"{html.escape(members)}; OOF {result.score:.5f}</p>" + effect + table(frame))


REPORT = {"ensemble": _report_candidates}
