"""What the training stages share: resolve their inputs from the run directory and the config,
call the training library (``comp.training.cv.cross_validate``) and publish its results."""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from comp import artifacts
from comp.clock import TimeBox
from comp.context import StageContext
from comp.errors import CompError, ConfigError
from comp.failures import is_part_failure
from comp.files import read_json, write_csv, write_json, write_npy
from comp.modalities import modality_of
from comp.significance import standard_error


def written_folds(ctx: StageContext) -> np.ndarray:
    """Fold number of every train row, in train.csv order (-1: in no fold), as stage split wrote it."""
    comp = ctx.competition
    return artifacts.read_folds(ctx.rundir.output(ctx.upstream["split"]) / artifacts.FOLDS, comp.train[comp.id_col])


def read_folds(ctx: StageContext) -> np.ndarray:
    """Fold number of every train row, in train.csv order (-1: in no fold), without the folds
    the baseline's model failed on (``comp.training.cv.without_folds``), which every stage
    after it leaves out; ``ctx.failed_folds`` says which (its record keeps them)."""
    from comp.training.cv import without_folds

    fold_of = written_folds(ctx)
    failed = sorted({k for dep in ctx.upstream.values() for k in (ctx.rundir.record(dep) or {}).get("failed_folds", [])})
    if failed:
        ctx.failed_folds = failed
        fold_of = without_folds(fold_of, failed)
    return fold_of


def load_targets(ctx: StageContext) -> np.ndarray:
    """The task's encoded targets, in train.csv order."""
    comp = ctx.competition
    return ctx.task.encode(comp.train[comp.target_cols])


def load_train(ctx: StageContext):
    """(train inputs, encoded targets) in train.csv order; notes on the inputs are logged."""
    from comp.data.loading import load_inputs

    inputs, notes = load_inputs(ctx.competition, "train", ctx.cfg.reading())
    for note in notes:
        ctx.log(note)
    return inputs, load_targets(ctx)


def model_name(cfg, competition, task) -> str:
    """``model.name``, or for ``auto`` the task kind's default model for this modality."""
    name = cfg.model.name
    if name != "auto":
        return name
    try:
        return task.default_models[competition.modality]
    except KeyError:
        raise ConfigError(f"task {task.kind} has no default model for {competition.modality} inputs; "
                          "set model=NAME (see `comp plugins`)") from None


def fold_training_rows(ctx: StageContext) -> int:
    """How many rows a fold's model learns from, on average over the folds stage split wrote
    (before any failed fold is taken out): the one number every training stage builds its
    fold models for (``InputSpec.rows``) and probes a plugin's size-dependent defaults with,
    so that the baseline, the changes, the trials and the seeds build the same model."""
    from comp.training.cv import rows_a_fold

    return rows_a_fold(written_folds(ctx))


FALLBACK_LR = 1e-3  # train.lr=auto when the LR range test suggests nothing: Adam's own default


def augmentations(cfg, competition, task) -> tuple[str, ...]:
    """``train.augmentations`` (entries ``name`` or ``name:strength``), or for ``auto`` every
    installed augmentation marked as a default that works on the inputs and preserves the
    task's labels."""
    from comp.registry import AUGMENTATIONS

    chosen = cfg.train.augmentations
    if chosen != "auto":
        entries = []
        for item in chosen:  # YAML reads "rotate: 10" (with a space) as a mapping
            if isinstance(item, dict):
                entries.extend(f"{k}:{v}" for k, v in item.items())
            else:
                entries.append(str(item))
        return tuple(entries)
    picked = []
    for info in AUGMENTATIONS.list():
        aug = AUGMENTATIONS.load(info.name)
        if aug.default and competition.modality in aug.modalities and task.kind in aug.tasks:
            picked.append(info.name)
    return tuple(picked)


def validate_model(cfg, competition, task, variants: bool = False) -> None:
    """The model plugin (and with ``variants`` those of baseline.variants), its modality and
    task, the augmentations and the loss, checked before any work."""
    from comp.augmentation import check_policy
    from comp.training.model import check_hyperparameters

    name = model_name(cfg, competition, task)
    _probe(name, competition, task)
    check_hyperparameters(name, competition.modality, task, dict(cfg.model.hp))
    for variant, knobs in variant_models(cfg, competition, task) if variants else ():
        try:
            _probe(variant, competition, task)
            check_hyperparameters(variant, competition.modality, task, knobs)  # its own check: weights on disk
        except CompError as exc:  # an unknown plugin, one for other inputs or tasks, a file missing
            raise ConfigError(f"baseline.variants: {exc}") from None
    check_policy(augmentations(cfg, competition, task), competition.modality, task.kind)
    if cfg.train.loss not in task.losses:
        raise ConfigError(f"train.loss={cfg.train.loss}: task {task.kind} takes {', '.join(task.losses)}")
    if cfg.train.label_smoothing != "auto" and cfg.train.label_smoothing and not task.smoothable:
        raise ConfigError(f"train.label_smoothing={cfg.train.label_smoothing:g}: task {task.kind} has no labels "
                          "to smooth; set it to 0")


def check_views(cfg, competition, task) -> None:
    """A list in ``predict.tta`` names views the training augmentations offer, for inputs that
    have test-time views."""
    tta = cfg.predict.tta
    if isinstance(tta, list):
        modality = modality_of(competition)
        if not modality.test_views:
            raise ConfigError(f"predict.tta={tta}: test-time views are for images; this competition is "
                              f"{competition.modality}; use predict.tta=1")
        from comp.augmentation import views_for

        views_for(augmentations(cfg, competition, task), modality.probe_spec(), task.kind, tta)


def resolve_lr(ctx: StageContext) -> tuple[float, str]:
    """(learning rate, where it came from): train.lr, or for ``auto`` the check stage's pick."""
    lr = ctx.cfg.train.lr
    if lr != "auto":
        return float(lr), "train.lr"
    if "check" not in ctx.upstream:  # a training stage whose inputs() omits check
        raise CompError(f"train.lr=auto: stage {ctx.name} does not read stage check; set train.lr=NUMBER")
    suggested = ctx.rundir.record(ctx.upstream["check"]).get("suggested_lr")
    if not suggested:
        ctx.log(f"train.lr=auto: stage check suggested no LR (its LR range test failed, was skipped or did not fit "
                f"the budget; see {ctx.rundir.path / 'check' / 'stage.json'}); training with {FALLBACK_LR:g}")
        return FALLBACK_LR, "fallback"
    return float(suggested), "check"


# Of the baseline's time, what each companion of the main model gets (the main model the
# rest). A companion (a backbone's frozen features) embeds each training row once, a forward
# pass: EVAL_ROW_COST of the training step's cost per row that stage check measured (at the
# size check timed: a backbone scales every image to its own resolution inside the model, so
# the planned size does not make it cheaper; the keras.applications backbones at a size the
# plan lowered cost less, so the forecast errs long), and fits a linear head per fold (0.3-0.4 s
# on 4,000 rows of 576 or 1,280 features: well within FOLD_SECONDS). Its share is that forecast
# times COMPANION_MARGIN, within COMPANION_SHARES; unmeasured (no check, no budget), a tenth:
# a tenth covers the embedding whenever the main model's 90% fits three epochs or more. (A
# main model trained with its backbone frozen was timed on a forward pass: the forecast is
# then a third of the embedding's cost, and the companion gets what the main model leaves.)
COMPANION_SHARE = 0.1
COMPANION_MARGIN = 1.5
COMPANION_SHARES = (0.02, 0.5)  # at most half: past that fine-tuning gets under one epoch a fold anyway


def companion_share(speed: dict | None, rows: int, folds: int, seconds: float) -> float | None:
    """What one companion gets of the stage's ``seconds``: its forecast on ``rows`` training
    rows and ``folds`` folds from stage check's measured ``speed``; None unmeasured."""
    from comp.planner import EVAL_ROW_COST, FOLD_SECONDS

    if not speed or not speed.get("row_seconds") or not 0 < seconds < float("inf"):
        return None
    need = COMPANION_MARGIN * (speed["row_seconds"] * EVAL_ROW_COST * rows + folds * FOLD_SECONDS)
    return min(max(need / seconds, COMPANION_SHARES[0]), COMPANION_SHARES[1])


def main_share(variants: list[str], companions: set[str], companion: float = COMPANION_SHARE) -> float:
    """The main model's share of the stage's time: an equal share beside other models, all
    but ``companion`` for each of its own companions beside those only (together at most
    the largest of ``COMPANION_SHARES``)."""
    if _only_companions(variants, companions):
        return 1.0 - min(companion * len(variants), COMPANION_SHARES[1])
    return 1.0 / (1 + len(variants))


def _only_companions(variants: list[str], companions: set[str]) -> bool:
    return bool(variants) and all(name in companions for name in variants)


def train_spec(cfg, lr: float, task):
    """The ``train`` section with the LR and the label smoothing resolved: what the training
    library is given."""
    from dataclasses import replace

    return replace(cfg.train, lr=lr, label_smoothing=task.label_smoothing(cfg.train.label_smoothing))


def variant_names(cfg, competition, task) -> list[str]:
    """``baseline.variants``: model plugins trained beside the baseline's own model, checked for clashes."""
    return [name for name, _ in variant_models(cfg, competition, task)]


def variant_models(cfg, competition, task) -> list[tuple[str, dict[str, Any]]]:
    """``baseline.variants`` with each one's knobs: for ``auto`` the task kind's portfolio for
    these inputs and the companions the main model's plugin declares (``comp.api.companions``:
    a pretrained backbone's frozen features), each where it can learn; a list names plugins
    with their default knobs."""
    main = model_name(cfg, competition, task)
    if cfg.baseline.variants == "auto":
        if "variants" not in cfg.ensemble.candidates:
            return []  # nothing would blend them: the time is the main model's
        portfolio = [(name, {}) for name in task.default_variants.get(competition.modality, ())]
        picked: list[tuple[str, dict[str, Any]]] = []
        for name, hp in portfolio + companion_models(main, dict(cfg.model.hp)):
            if name != main and name not in (n for n, _ in picked) and _learns(name, competition, task, hp):
                picked.append((name, hp))
        return picked
    names = [str(v) for v in cfg.baseline.variants]
    for i, name in enumerate(names):
        if name == main or name in names[:i]:
            raise ConfigError(f"baseline.variants: {name} is listed twice (model.name is {main}); list each "
                              "model once")
    return [(name, {}) for name in names]


def portfolio_network(cfg, competition, task) -> tuple[str, dict[str, Any]] | None:
    """When the main model is an estimator (a table's gradient boosting): the first Keras
    model of ``baseline.variants``, with its knobs, else None (a second Keras variant shares
    the estimators' time). The estimators cost seconds a
    fold; the network's schedule is what the time buys, so stage check measures it (its LR
    and speed) and the run plan funds it (measured on diamonds: its MLP trained in what the
    trees left, 6 epochs a fold at the fallback LR, scored RMSE 0.117 and got no weight in the
    blend; its 40 epochs at check's LR scored 0.0925 and took 0.38 of it)."""
    from comp.training.model import is_estimator

    if not is_estimator(model_name(cfg, competition, task)):
        return None
    return next(((name, hp) for name, hp in variant_models(cfg, competition, task) if not is_estimator(name)), None)


def network_key(cfg, competition, task) -> dict:
    """``portfolio_network`` as a stage's ``key_values``: {} where there is none."""
    network = portfolio_network(cfg, competition, task)
    return {"network": [network[0], network[1]]} if network else {}


def companion_models(main: str, hp: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (plugin, knobs) pairs model plugin ``main`` declares worth training beside it."""
    from comp.registry import MODELS

    try:
        declared = getattr(MODELS.load(main), "companions", None)
    except CompError:
        return []
    return [(str(name), dict(knobs)) for name, knobs in declared(hp)] if declared else []


def _probe(name: str, competition, task) -> None:
    """Load model plugin ``name`` for these inputs and this task; a CompError says why it cannot."""
    from comp.api import InputSpec
    from comp.training.model import load_plugin

    load_plugin(name, InputSpec((0,), competition.modality), task)


def _learns(name: str, competition, task, hp: dict[str, Any] | None = None) -> bool:
    """Whether model plugin ``name`` is installed and learns this task from these inputs, on
    this many rows (the portfolio leaves out what cannot, e.g. for a third party's task kind,
    what its plugin says pays only on larger tables, and what its own check refuses, e.g.
    CatBoost where it is not installed)."""
    from comp.registry import MODELS

    try:
        _probe(name, competition, task)
        plugin = MODELS.load(name)
        if len(competition.train) < getattr(plugin, "min_rows", 0):
            return False
        check = getattr(plugin, "preflight", None)  # an estimator's field or a Keras plugin's declaration
        if check:  # e.g. an optional library that is not installed, a weights file that is not there
            check(dict(hp or {}))
    except CompError:
        return False
    return True


def cross_validate_stage(ctx: StageContext, out: Path | None = None, take_out_failed_folds: bool = False,
                         ) -> dict[str, Any]:
    """Train the configured model on every fold into ``out`` (default: the stage's work
    folder), and each of ``baseline.variants`` into ``out/variants/<name>/``, each with the
    run directory's OOF artifacts; return the stage record (the variants' scores under "variants").
    ``take_out_failed_folds`` (the baseline: it sets the run's folds): a fold the main model
    fails on leaves the run (``_train_main``); elsewhere it fails the stage."""
    comp, task, cfg = ctx.competition, ctx.task, ctx.cfg
    out = out or ctx.work
    fold_of = read_folds(ctx)
    inputs, y = load_train(ctx)
    main = model_name(cfg, comp, task)
    variants = variant_models(cfg, comp, task)
    models = [(main, dict(cfg.model.hp), out)] + [
        (name, hp, out / artifacts.VARIANT_DIR.format(name=name)) for name, hp in variants]
    box = ctx.time
    # Companions (a backbone's frozen features) cost a forward pass per row, not a schedule:
    # the main model keeps most of the time; a main estimator comes first with all of it
    # (below); otherwise every model gets an equal share. The run plan may fund a network
    # beside an estimator: the estimators then share only their planned seconds (below).
    companions = {name for name, _ in companion_models(main, dict(cfg.model.hp))}
    only_companions = _only_companions([name for name, _ in variants], companions)
    n_folds = int(fold_of.max()) + 1
    check = ctx.rundir.record(ctx.upstream["check"]) if "check" in ctx.upstream else None
    # every row a fold trains on is embedded (-1: in no fold; history rows are trained on)
    forecast = companion_share((check or {}).get("speed"), int((fold_of != -1).sum()), n_folds,
                               box.remaining() if box.limited else 0.0)
    share = COMPANION_SHARE if forecast is None else forecast
    main_box = box.share(main_share([name for name, _ in variants], companions, share))
    # An estimator's schedule is fixed (its iterations, its trees): given all of the time, it
    # takes what it needs and the variants share what it leaves. An equal share cut every
    # model of a 262,000-row table's portfolio short (the main one at 45-92 of 300 iterations).
    # A network plans its schedule to fill its box, so a Keras main model keeps its share.
    from comp.training.model import is_estimator

    main_first = box.limited and len(models) > 1 and is_estimator(main) and not only_companions
    if main_first:
        main_box = box
    # A run plan about the portfolio's network (comp.planner: beside an estimator): the
    # estimators share their planned seconds first, the network trains last in the rest.
    network = _planned_network(ctx, [name for name, _ in variants]) if box.limited else None
    if network:
        models.sort(key=lambda m: m[0] == network[0])
        estimators = box.within(network[1])
        main_box = estimators if main_first else estimators.split(len(models) - 1)
    def first(others: int) -> str:
        return (f"{main}'s folds first, the {'other' if others == 1 else f'other {others}'} in what it leaves"
                if main_first else f"shared equally by the {others + 1}")

    if network:
        ctx.log(f"budget: {max(box.remaining(), 0):.0f}s of budget={cfg.budget}: ~{estimators.seconds:.0f}s for the "
                f"{len(models) - 1} estimators and their {n_folds} folds ({first(len(models) - 2)}), the "
                f"rest for {network[0]} (the run plan)")
    elif box.limited:
        if only_companions:
            how = "stage check measured no speed" if forecast is None else "as forecast from stage check's speed"
            ctx.log(f"budget: {max(box.remaining(), 0):.0f}s of budget={cfg.budget}: {main_box.seconds:.0f}s for "
                    f"{main}'s {n_folds} folds, the rest for {', '.join(n for n, _ in variants)} beside it "
                    f"({share:.0%} each, {how})")
        else:
            shared = (first(len(models) - 1) + f" ({n_folds} folds each)" if main_first
                      else f"shared equally by the {len(models)} models and their {n_folds} folds" if len(models) > 1
                      else f"shared equally by the {n_folds} folds")
            ctx.log(f"budget: {max(box.remaining(), 0):.0f}s of budget={cfg.budget}, {shared}")

    # One LR for every Keras model of the stage, resolved (and any fallback said) once.
    lr = resolve_lr(ctx) if any(not is_estimator(name) for name, _, _ in models) else (0.0, "none")
    records, left_out = [], set()
    for i, (name, hp, folder) in enumerate(models):
        label = "" if i == 0 else f"variant {name}: "  # what a faster model leaves goes on to the next
        sharing = [m[0] for m in models[i:] if m[0] not in left_out and not (network and m[0] == network[0])]
        if main_first and i == 1 and sharing:
            left_out = _left_out_variants(ctx, models[0][0], sharing, estimators if network else box, out, n_folds)
            sharing = [m for m in sharing if m not in left_out]
        if name in left_out:
            continue
        try:
            if i == 0 and take_out_failed_folds:  # a fold it fails on leaves the run (while two are left)
                record, fold_of = _train_main(ctx, inputs, y, fold_of, name, hp, lr, folder, main_box)
                records.append(record)
                continue
            if network:  # the estimators share theirs, the network (last) takes what they leave
                part = box if name == network[0] else estimators.split(len(sharing))
            else:
                part = box.split(len(sharing))
            records.append(_train_model(ctx, inputs, y, fold_of, name, hp, lr, folder,
                                        part if i else main_box, label)[0])
        except Exception as exc:
            # A variant only adds a candidate for the ensemble: one that raises costs itself
            # (left out, its folder removed), not the baseline. The main model's failure stops the stage.
            if i == 0 or not is_part_failure(exc):
                raise
            ctx.failed(f"variant {name}", exc)
            ctx.log(f"variant {name}: the stage is published without it; once its plugin is fixed, overwrite=true "
                    "trains it")
            shutil.rmtree(folder, ignore_errors=True)
    record, variants = records[0], records[1:]
    if left_out:  # in the portfolio's order: the budget left them no useful share
        record["variants_left_out"] = [m[0] for m in models if m[0] in left_out]
    if variants:
        record["variants"] = {r["model"]["name"]: {k: r[k] for k in ("score", "scores", "fold_scores", "model",
                                                                     "decoding", "folds")}
                              for r in variants}
        ranked = task.objective.ranked(records, key=lambda r: r["score"])
        ctx.log("OOF " + task.metric_name + " by model: "
                + ", ".join(f"{r['model']['name']} {r['score']:.5f}" for r in ranked))
    return record


VARIANT_FLOOR = 0.25  # of the main estimator's seconds a fold: a variant's share below it is left out


def _left_out_variants(ctx: StageContext, main: str, variants: list[str], box: TimeBox, out: Path,
                       n_folds: int) -> set[str]:
    """After the main estimator took what it needed (it is trained first under a budget), the
    ``variants`` left out, the last first, until each one's fold share of ``box`` is at least
    ``VARIANT_FLOOR`` of what the main model's folds took (its cv.json in ``out``); said once.
    A variant cut to a fraction of that is a fraction of its own schedule (flights at
    budget=2m: 3 of extra trees' 300 trees, ROC-AUC 0.87 against gradient boosting's 0.91)."""
    from comp.training.cv import mean_fold_seconds

    main_fold = mean_fold_seconds(out)
    main_fold = 0.0 if math.isnan(main_fold) else main_fold
    fit = len(variants)
    while fit and max(box.remaining(), 0.0) / fit / n_folds < VARIANT_FLOOR * main_fold:
        fit -= 1
    # a variant whose folds all finished before a kill costs nothing: a resumed run keeps it
    done = {v for v in variants[fit:]
            if all((out / artifacts.VARIANT_DIR.format(name=v) / artifacts.FOLD_DIR.format(fold=k) / "done.json")
                   .is_file() for k in range(n_folds))}
    variants = [v for v in variants if v not in done]
    fit = min(fit, len(variants))
    if fit < len(variants):
        ctx.log(f"budget: {', '.join(variants[fit:])} left out: the {max(box.remaining(), 0):.0f}s left would give "
                f"{'each' if len(variants) - fit > 1 or fit else 'it'} under {VARIANT_FLOOR:.0%} of the ~{main_fold:.1f}s "
                f"a fold {main} took" + (f"; {', '.join(variants[:fit])} train{'s' if fit == 1 else ''} in them"
                                         if fit else ""))
    return set(variants[fit:])


def _planned_network(ctx: StageContext, variants: list[str]) -> tuple[str, float] | None:
    """(the network among ``variants`` the run plan funds, the estimators' seconds before it),
    or None when the plan is about no network of these."""
    from comp import run_plan

    plan = run_plan.stored(ctx.rundir.path) or {}
    if plan.get("stage") != ctx.name or plan.get("network") not in variants:
        return None
    return plan["network"], float(plan.get("beside_seconds") or 0.0)


def _train_main(ctx: StageContext, inputs, y, fold_of, name: str, hp: dict, lr: tuple[float, str], out: Path,
                box: TimeBox) -> tuple[dict[str, Any], np.ndarray]:
    """The stage's main model cross-validated into ``out``, going on past a fold whose model
    raises (a plugin's bug on that fold's rows, its memory): that fold leaves the run
    (``take_out_folds``), said as a failed part. (its record, the folds it was scored on)."""
    from comp.failures import FAILURES_LOG

    marker, log = out / artifacts.FAILED_FOLDS, out / FAILURES_LOG
    taken = read_json(marker) if marker.is_file() else {}
    failed = {int(k): why for k, why in taken.get("folds", {}).items()}
    if not failed:
        record, failed = _train_model(ctx, inputs, y, fold_of, name, hp, lr, out, box, "", keep_going=True)
        if not failed:
            return record, fold_of
        # first: a kill after it resumes here, its tracebacks too (a stage's log starts empty)
        write_json(marker, {"folds": {str(k): why for k, why in sorted(failed.items())},
                            "tracebacks": log.read_text(encoding="utf-8") if log.is_file() else ""})
    elif taken.get("tracebacks") and not log.is_file():
        log.write_text(taken["tracebacks"], encoding="utf-8")
    n_folds = int(fold_of.max()) + 1
    fold_of = take_out_folds(out, fold_of, sorted(failed))
    for k, why in sorted(failed.items()):
        ctx.failures.append({"what": f"model {name} on fold {k + 1}/{n_folds}", "reason": why})
    ctx.failed_folds = sorted(failed)
    ctx.log(f"the run goes on without fold(s) {', '.join(str(k + 1) for k in sorted(failed))} of {n_folds}: their "
            f"rows are still learnt from, never scored; the other {n_folds - len(failed)} folds are numbered 1-"
            f"{n_folds - len(failed)} from here on (overwrite=true retrains every fold once the plugin is fixed)")
    record, _ = _train_model(ctx, inputs, y, fold_of, name, hp, lr, out, box, "")  # every fold read back, renumbered
    return record, fold_of


def take_out_folds(out: Path, fold_of: np.ndarray, failed: list[int]) -> np.ndarray:
    """``fold_of`` without the folds ``failed`` (``comp.training.cv.without_folds``), and
    ``out``'s fold folders renumbered to match: a failed fold's folder (it has no done.json)
    removed, each finished one after it moved down. Safe to repeat after a kill part-way:
    the folders are visited in order, and one already in place is left."""
    from comp.training.cv import without_folds

    kept = [k for k in range(int(fold_of.max()) + 1) if k not in set(failed)]
    for k in range(int(fold_of.max()) + 1):
        folder = out / artifacts.FOLD_DIR.format(fold=k)
        if folder.is_dir() and not (folder / "done.json").is_file():
            shutil.rmtree(folder)
    for i, k in enumerate(kept):
        target, source = out / artifacts.FOLD_DIR.format(fold=i), out / artifacts.FOLD_DIR.format(fold=k)
        if k != i and not target.exists() and source.is_dir():
            source.rename(target)
    return without_folds(fold_of, failed)


def write_oof(ctx: StageContext, out: Path, oof: np.ndarray, decoding: dict, fold_of: np.ndarray) -> None:
    """A training stage's OOF artifacts in ``out``: the predictions, their decoding and the
    decoded table beside the truth."""
    comp, task = ctx.competition, ctx.task
    write_npy(out / artifacts.OOF_PROBS, oof)
    write_json(out / artifacts.DECODING, decoding)
    write_csv(out / artifacts.OOF_TABLE, pd.DataFrame({
        comp.id_col: comp.train[comp.id_col],
        "fold": fold_of,
        comp.target_cols[0] if len(comp.target_cols) == 1 else "target":
            task.truth_strings(comp.train[comp.target_cols]),
        "prediction": task.decode(oof, decoding),
    }))


def _train_model(ctx: StageContext, inputs, y, fold_of, name: str, hp: dict, lr: tuple[float, str], out: Path,
                 box: TimeBox, label: str, keep_going: bool = False):
    """One model plugin cross-validated into ``out`` with its OOF artifacts: (its stage record,
    {}). ``lr`` is (learning rate, where it came from), used when the model is a Keras one.
    With ``keep_going``, a fold whose model raised gives (None, fold -> why) and no artifacts
    (the folds are taken out first, ``_train_main``)."""
    from comp.progress import Progress
    from comp.training.cv import cross_validate
    from comp.training.model import is_estimator
    from comp.training.spec import ModelSpec

    comp, task, cfg = ctx.competition, ctx.task, ctx.cfg
    model = ModelSpec(name, hp, augmentations(cfg, comp, task))
    keras_model = not is_estimator(name)
    lr, lr_source = lr if keras_model else (0.0, "none")
    spec = train_spec(cfg, lr, task)
    n_folds = int(fold_of.max()) + 1
    modality = modality_of(comp)
    what = modality.describe(inputs)
    recipe = ""
    if keras_model:
        recipe = (f", {spec.optimizer} lr {lr:.3g} ({lr_source}) {spec.schedule}"
                  + (f", augmentations {', '.join(model.augmentations)}" if model.augmentations else ""))
    progress = Progress()

    def log(message: str) -> None:
        progress.clear()
        ctx.log(label + message)

    log(f"{n_folds} folds, {what}, task {task.kind}, model {name}, metric {task.metric_name}{recipe}")

    def hooks(k: int, folds: int):
        live = progress.epoch_hook(ctx.name, k, folds, cfg.train.epochs, ctx.budget, task.metric_name)
        if not cfg.train.verbose:
            return live

        def both(epoch: int, logs: dict) -> None:
            live(epoch, logs)
            log(f"fold {k + 1}/{folds} epoch {epoch + 1}: loss {logs['loss']:.4f}, val loss {logs['val_loss']:.4f}, "
                f"val {task.metric_name} {logs['val_score']:.4f}, lr {logs['lr']:.3g}")

        return both

    result = cross_validate(inputs, y, fold_of, task, model, spec, out, seed=cfg.seed, time=box, log=log,
                            epoch_hooks=hooks, title=ctx.name, predict_batch_size=cfg.predict.batch_size,
                            keep_going=keep_going, spec_rows=fold_training_rows(ctx))
    if result.failed:
        return None, result.failed
    write_oof(ctx, out, result.oof, result.decoding, fold_of)
    others = ", ".join(f"{k} {v:.4f}" for k, v in result.scores.items() if k != task.metric_name)
    if others:
        log(f"OOF also: {others}")
    record = {
        "score": result.score,
        "metric": task.metric_name,
        "higher_is_better": task.higher_is_better,
        "scores": result.scores,
        "fold_scores": [f["score"] for f in result.folds],
        "score_se": standard_error([f["score"] for f in result.folds]),
        "stopped_by_budget": result.stopped_by_budget,
        "task": task.kind,
        "model": {**model.to_dict(), "hp": result.hp},
        "folds": n_folds,
        "decoding": result.decoding,
        "lr": result.folds[0].get("lr", lr),  # what the optimizer used: scaled to the replicas
        "replicas": result.folds[0].get("replicas", 1),
        "lr_source": lr_source,
        "recipe": {k: getattr(spec, k) for k in ("optimizer", "weight_decay", "schedule", "warmup",
                                                 "label_smoothing", "clip", "ema", "epochs", "batch_size")},
        "plan": [f.get("plan") for f in result.folds],
        "fold_models": True,  # fold_k/ models for every fold: stage predict can use this stage
    }
    shape = modality.input_shape(inputs)
    if shape:
        record["input_shape"] = shape
    return record, {}
