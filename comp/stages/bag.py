"""Stage `bag`: the run's final configuration trained again with new seeds on the same folds
(docs/recipe.md 8).

Networks trained from different seeds on the same rows err in different places, and their
mean beats each of them: once the configuration is fixed, a seed ensemble is the surest gain
left to buy with time. This stage trains the configuration the run ended with (stage tune's
result when it published fold models, else the baseline's) again with seed ``seed + r``, one
fold at a time, and publishes each fold's mean as that fold's model. Fold k's OOF prediction
is the mean of models none of which saw fold k's rows, so its score is as honest as its
source's (a configuration tune chose on some folds stays scored on the others).

Under a budget it takes the training time the other stages leave (``Share(leftover=True)``):
round by round (every fold a second seed before any a third), a fold model is started only
when its forecast (its source's time per fold, then its own) fits; a fold the time did not
reach keeps its single model. ``bag.seeds=auto`` trains at most ``AUTO_SEEDS`` more a fold
under a budget and none without one (the recipe's run takes the time it needs; a seed
ensemble doubles it), ``bag.seeds=N`` N more a fold. A model whose predictions do not change
with the seed (a seeded estimator: a table's gradient boosting) has nothing to bag: the
stage then bags the network the baseline trained beside it (``portfolio_network``), the
model of a table's portfolio that does change with the seed (measured on the default table at
budget=5m: the run ended 39% early with the MLP's schedule done and nothing left to train).
"""
from __future__ import annotations

import dataclasses
import math
import shutil
from typing import Any

import numpy as np
import pandas as pd

from comp import artifacts, clock
from comp.budget import Share
from comp.clock import TimeBox
from comp.context import StageContext
from comp.failures import is_part_failure
from comp.files import read_json, write_csv

NAME = "bag"
HELP = "train the final configuration again with new seeds on each fold (the time left); each fold's mean is its model"
# budget: bag.seeds=auto trains only under one, and how many fit depends on it
CONFIG = ("seed", "bag", "budget", "task", "metric", "data", "train", "model", "predict.batch_size",
          "split.group_column")
TRAINS = True
TIME = Share(leftover=True)
OPTIONAL = True  # it only adds to what the stages before it published: a failure costs itself, not the run
AUTO_SEEDS = 4  # bag.seeds=auto under a budget: at most this many more models a fold
MARGIN = 1.15  # a fold model starts only when its forecast times this fits what is left
UNITS = "units.csv"
UNIT_COLUMNS = ["seed", "fold", "score", "seconds", "epochs", "path"]
SOURCES = ("tune", "baseline")  # the run's final configuration: the first of these with fold models


def inputs(cfg, available, training=()) -> dict[str, str]:
    deps = {"split": "split", "baseline": "baseline"}
    if "tune" in available:  # its result, when it published fold models, is what the run ended with
        deps["tune"] = "tune"
    if cfg.train.lr == "auto":
        deps["check"] = "check"
    return deps


def validate(cfg, competition, task) -> None:
    from comp.stages.training import validate_model

    validate_model(cfg, competition, task)


def key_values(cfg, competition, task) -> dict:
    """What the stage depends on beyond ``CONFIG``: the network it bags when the final
    configuration is a seeded estimator (baseline.variants and ensemble.candidates decide it)."""
    from comp.stages.training import network_key

    return network_key(cfg, competition, task)


def seeds_allowed(cfg, limited: bool) -> int:
    """More models a fold that ``bag.seeds`` allows (``auto``: ``AUTO_SEEDS`` under a budget)."""
    seeds = cfg.bag.seeds
    if seeds == "auto":
        return AUTO_SEEDS if limited else 0
    return int(seeds)


@dataclasses.dataclass
class Source:
    """A configuration the stage may bag: its fold models in ``folder`` (run-relative), its
    result there, and its config changes over the run's."""

    name: str  # as the log and the record say it: a stage, or stage/variant
    folder: str
    result: Any
    changes: dict[str, Any]
    # Where its seeds go in the stage's folder: each source its own, so a resumed stage never
    # takes one source's model for another's.
    under: str = ""


def sources(ctx: StageContext) -> list[Source]:
    """What the stage may bag, in order: the run's final configuration (tune's result when it
    published fold models, else the baseline's), then the network the baseline trained beside
    an estimator (``comp.stages.training.portfolio_network``)."""
    from comp.records import Result
    from comp.stages.training import portfolio_network

    found = []
    for stage in SOURCES:
        if stage not in ctx.upstream:
            continue
        result = ctx.rundir.result(ctx.upstream[stage])
        if result.fold_models and not result.fold_paths:
            changes = (result.extra.get("chosen") or {}).get("changes", {}) if stage != "baseline" else {}
            found.append(Source(ctx.upstream[stage], ctx.upstream[stage], result, dict(changes)))
            break
    assert found, "the baseline always has fold models"
    network = portfolio_network(ctx.cfg, ctx.competition, ctx.task)
    baseline = ctx.rundir.record(ctx.upstream["baseline"])
    if network and network[0] in (baseline.get("variants") or {}):
        name, hp = network
        variant = baseline["variants"][name]
        result = Result.from_dict({**variant, "metric": baseline["metric"], "input_shape": baseline.get("input_shape"),
                                   "higher_is_better": baseline["higher_is_better"]})
        found.append(Source(f"{ctx.upstream['baseline']}/{name}",
                            f"{ctx.upstream['baseline']}/{artifacts.VARIANT_DIR.format(name=name)}", result,
                            {"model.name": name, "model.hp": dict((variant.get("model") or {}).get("hp") or hp)},
                            under=f"{name}/"))
    return found


def run(ctx: StageContext) -> dict[str, Any]:
    from comp.stages.training import load_targets

    limit = seeds_allowed(ctx.cfg, ctx.time.limited)
    found = sources(ctx)
    if not limit:
        why = ("bag.seeds=auto trains more seeds only under budget= (bag.seeds=N: N more a fold)"
               if ctx.cfg.bag.seeds == "auto" else "bag.seeds=0")
        ctx.log(f"nothing trained: {why}")
        source = found[0]
        return _record(ctx, source, _paths(source), _preds(ctx, source), read_folds(ctx), [], why)
    y = load_targets(ctx)
    reasons = []
    for i, source in enumerate(found):
        paths, preds, units, why, same = _bag(ctx, source, limit, y)
        if same and i + 1 < len(found):
            ctx.log(f"{why}; the network beside it instead")
            reasons.append(why)
            continue
        if not units and i:  # the network got no seed either: the record stays the final configuration's
            why = "; ".join([*reasons, f"{source.name}: {why}"])
            source = found[0]
            paths, preds = _paths(source), _preds(ctx, source)
        ctx.log(f"stopped: {why}")
        return _record(ctx, source, paths, preds, read_folds(ctx), units, why)


def read_folds(ctx: StageContext) -> np.ndarray:
    from comp.stages.training import read_folds as read  # imports TensorFlow: only when the stage runs

    return read(ctx)


def _paths(source: Source) -> list[list[str]]:
    return [[f"{source.folder}/{artifacts.FOLD_DIR.format(fold=k)}"] for k in range(source.result.folds)]


def _preds(ctx: StageContext, source: Source) -> list[list[np.ndarray]]:
    oof, fold_of = np.load(ctx.rundir.path / source.folder / artifacts.OOF_PROBS), read_folds(ctx)
    return [[oof[fold_of == k]] for k in range(source.result.folds)]


def _planned_epochs(ctx: StageContext, source: Source) -> int:
    """The epochs ``source``'s folds were planned for (its cv.json); the baseline's for a stage."""
    from comp.stages.trials import base_epochs
    from comp.training.cv import SUMMARY_FILE

    if not source.under:  # the final configuration: a stage's own fold models
        return base_epochs(ctx)
    summary = ctx.rundir.path / source.folder / SUMMARY_FILE
    planned = [(f.get("plan") or {}).get("epochs") for f in (read_json(summary).get("folds", [])
                                                            if summary.is_file() else [])]
    planned = [int(p) for p in planned if p]
    return max(planned) if planned else int(ctx.cfg.train.epochs)


def _bag(ctx: StageContext, source: Source, limit: int, y: np.ndarray):
    """Up to ``limit`` more seeds a fold of ``source`` in the time left: (per fold its model
    folders, per fold its models' predictions, the units trained, why it stopped, whether the
    model predicts the same with another seed)."""
    from comp.data.loading import load_inputs
    from comp.stages.training import fold_training_rows, resolve_lr
    from comp.stages.trials import lr_setting
    from comp.training.cv import mean_fold_seconds
    from comp.training.model import is_estimator

    result, changes, n_folds = source.result, source.changes, source.result.folds
    model = (result.model or {}).get("name", "")
    lr = 0.0 if is_estimator(model) else resolve_lr(ctx)[0]
    cfg = ctx.cfg.merged({**lr_setting(lr), **changes}, where=f"{source.name}'s configuration")
    epochs = _planned_epochs(ctx, source)
    fold_of = read_folds(ctx)
    paths, preds = _paths(source), _preds(ctx, source)
    forecast = mean_fold_seconds(ctx.rundir.path / source.folder)
    forecast = forecast if math.isfinite(forecast) else math.inf  # unknown: no fold model is started under a budget
    units: list[dict] = []
    shown = {k: v for k, v in changes.items() if not k.startswith("model.")}
    ctx.log(f"{source.name}'s configuration ({model}{', ' + _shown(shown) if shown else ''}), {epochs} epochs: "
            f"up to {limit} more seed(s) a fold, ~{forecast:.0f}s a fold model"
            + (f"; {max(ctx.time.remaining(), 0):.0f}s left by the other training stages" if ctx.time.limited else ""))
    why = f"every fold has {limit} more seed(s)"
    data = load_inputs(ctx.competition, "train", cfg.reading())[0], y
    rows = fold_training_rows(ctx)  # what every fold model of the run is built for
    after = _after_cost(ctx)
    owed = 0.0  # what the models kept so far add to the ensemble and prediction, after this stage
    for r, k in [(r, k) for r in range(1, limit + 1) for k in range(n_folds)]:  # every fold a seed before any gets two
        folder = ctx.work / _unit_path(r, k, source.under)
        finished = (folder / "done.json").is_file()  # by an earlier attempt: resumed whatever the time
        cost = after(r + 1)
        end = ctx.time.end - owed - sum(cost)
        if ctx.time.limited and not finished and clock.now() + MARGIN * forecast > end:
            why = (f"the time left ({max(ctx.time.remaining(), 0):.0f}s) does not fit another fold model "
                   f"(~{forecast:.0f}s, and ~{sum(cost):.1f}s more for the ensemble and prediction)")
            break
        try:
            unit, cut = _train_unit(ctx, cfg, data, fold_of, k, r, epochs, rows, end, source.under)
        except Exception as exc:
            if not is_part_failure(exc):
                raise
            # What finished is published; the model that failed costs itself.
            why = f"fold {k + 1} seed {r + 1} failed: {ctx.failed(f'fold {k + 1} seed {r + 1}', exc)}"
            _discard(folder, ctx.work)
            break
        if cut:  # its schedule was cut to the time left: a weaker model would lower the fold's mean
            why = f"the time left could not fit fold {k + 1} seed {r + 1}'s schedule of {epochs} epochs"
            _discard(folder, ctx.work)
            break
        pred = np.load(folder / "val_pred.npy")
        if not units and np.allclose(pred, preds[k][0], rtol=0, atol=1e-6):
            _discard(folder, ctx.work)  # a copy of its source's model: not published
            return paths, preds, units, f"model {model} predicts the same with another seed: nothing to bag", True
        units.append(unit)
        owed += sum(cost)
        if ctx.budget is not None and cost[1]:
            ctx.budget.reserve_more(cost[1])  # prediction's part: the training's end moves for it
        paths[k].append(f"{NAME}/{unit['path']}")
        preds[k].append(pred)
        forecast = float(np.mean([u["seconds"] for u in units]))
        ctx.log(f"fold {k + 1}/{n_folds} seed {r + 1}: {ctx.task.metric_name}={unit['score']:.4f} alone, "
                f"{ctx.task.score(y[fold_of == k], np.mean(preds[k], axis=0)):.4f} the mean of the fold's {len(preds[k])} models "
                f"({unit['seconds']:.0f}s)")
    return paths, preds, units, why, False


def _after_cost(ctx: StageContext):
    """A function of a fold's model count once another is added, giving what that model adds
    to (the ensemble, prediction) after this stage: the run plan's per-model seconds; the
    prediction's part only past the models a fold its reserve holds. (0, 0) without a plan."""
    from comp import run_plan

    plan = run_plan.stored(ctx.rundir.path) if ctx.time.limited else None
    per_model = (plan or {}).get("model_after") or {}
    reserved = int((plan or {}).get("reserved_models_a_fold") or 0)
    ensemble, predict = float(per_model.get("ensemble", 0.0)), float(per_model.get("predict", 0.0))
    return lambda models: (ensemble, predict if models > reserved else 0.0)


def _discard(folder, work) -> None:
    """A fold model left out of the bag, and the folders above it in ``work`` once they hold
    no other."""
    shutil.rmtree(folder, ignore_errors=True)
    for parent in folder.parents:
        if parent == work or any(parent.glob("*/fold_*")) or any(parent.glob("fold_*")):
            break
        shutil.rmtree(parent, ignore_errors=True)


def _unit_path(r: int, k: int, under: str = "") -> str:
    """Where fold ``k``'s model of seed ``seed + r`` is, in the stage's folder (``under`` its
    source's own folder there)."""
    return f"{under}seed_{r + 1}/{artifacts.FOLD_DIR.format(fold=k)}"


def _train_unit(ctx: StageContext, cfg, data, fold_of: np.ndarray, k: int, r: int,
                epochs: int, rows: int, end: float = math.inf, under: str = "") -> tuple[dict[str, Any], bool]:
    """Fold ``k`` trained with seed ``cfg.seed + r`` into ``<under>seed_<r + 1>/``: its row of
    units.csv, and whether the time cut its schedule short."""
    from comp.stages.training import augmentations, model_name, train_spec
    from comp.training.cv import cross_validate
    from comp.training.spec import ModelSpec

    inputs, y = data
    lr = 0.0 if cfg.train.lr == "auto" else float(cfg.train.lr)  # "auto" only for a model without an LR
    # Only the fold models are bagged: no epoch weights kept for snapshots or averages.
    spec = dataclasses.replace(train_spec(cfg, lr, ctx.task), epochs=epochs, snapshots=0, swa_epochs=0, keep_ema=0.0)
    model = ModelSpec(model_name(cfg, ctx.competition, ctx.task), dict(cfg.model.hp),
                      augmentations(cfg, ctx.competition, ctx.task))
    began = clock.now()
    result = cross_validate(inputs, y, fold_of, ctx.task, model, spec, ctx.work / f"{under}seed_{r + 1}", seed=cfg.seed + r,
                            time=TimeBox(min(ctx.time.end, end), ctx.time.start, ctx.time.hard),
                            log=lambda message: None, only=[k],
                            predict_batch_size=cfg.predict.batch_size, spec_rows=rows)
    fold = result.folds[0]
    # A fold resumed from an earlier attempt took its recorded seconds, not the moment it took now.
    seconds = max(clock.now() - began, float(fold.get("seconds") or 0.0))
    unit = {"seed": r + 1, "fold": k + 1, "score": float(fold["score"]), "seconds": round(seconds, 1),
            "epochs": fold.get("epochs"), "path": _unit_path(r, k, under)}
    plan = fold.get("plan") or {}
    shrunk = bool(plan.get("budgeted")) and plan.get("epochs", epochs) < plan.get("max_epochs", epochs)
    return unit, bool(result.stopped_by_budget) or shrunk


def _shown(changes: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in changes.items())


def _record(ctx: StageContext, source: Source, paths, preds, fold_of, units, why: str) -> dict[str, Any]:
    """The stage's record: each fold's mean as its model, scored like any training stage's
    (on the folds its source's configuration was not chosen on), or, when nothing was
    trained, no fold models of its own."""
    from comp.significance import standard_error
    from comp.stages.training import load_targets, write_oof
    from comp.stages.trials import honest_record

    stage, result = source.name, source.result
    write_csv(ctx.work / UNITS, pd.DataFrame(units, columns=UNIT_COLUMNS))
    extra = {"bagged": stage, "seeds": [len(p) for p in paths], "units": len(units), "why": why}
    if not units:
        return {"score": result.score, "metric": result.metric, "higher_is_better": result.higher_is_better,
                "fold_scores": result.fold_scores, "score_se": result.extra.get("score_se"), "folds": result.folds,
                "fold_models": False, **extra}
    task, y = ctx.task, load_targets(ctx)
    oof = np.zeros((len(y), *preds[0][0].shape[1:]), dtype=np.float32)
    for k, fold in enumerate(preds):
        oof[fold_of == k] = np.mean(fold, axis=0)
    scored = fold_of >= 0
    decoding, score = task.fit_decoding(y[scored], oof[scored], fold_of[scored])
    scores = task.honest_scores(y[scored], oof[scored], fold_of[scored])
    scores[task.metric_name] = score
    write_oof(ctx, ctx.work, oof, decoding, fold_of)
    fold_scores = [task.score(y[fold_of == k], oof[fold_of == k]) for k in range(len(preds))]
    alone = result.extra.get("score_all_rows", result.score)
    ctx.log(f"OOF {task.metric_name} = {score:.5f} +- {standard_error(fold_scores):.5f} (folds: "
            + ", ".join(f"{s:.4f}" for s in fold_scores) + f"); {stage}'s fold models alone {alone:.5f}")
    record = {"score": score, "metric": task.metric_name, "higher_is_better": task.higher_is_better,
              "scores": scores, "fold_scores": fold_scores, "score_se": standard_error(fold_scores),
              "task": task.kind, "model": result.model, "folds": result.folds, "decoding": decoding,
              "fold_models": True, "fold_paths": paths, **extra}
    if result.input_shape:
        record["input_shape"] = result.input_shape
    return honest_record(ctx, record, list(result.extra.get("selected_on", [])))


def _report_units(run) -> str:
    from comp.html import missing, note, table

    path = run.folder(NAME) / UNITS
    if not run.record(NAME) or not path.is_file():
        return missing(NAME)
    frame = pd.read_csv(path)
    why = run.record(NAME).get("why", "")
    return (table(frame) if len(frame) else "") + note(f"stopped: {why}")


REPORT = {"bag": _report_units}
