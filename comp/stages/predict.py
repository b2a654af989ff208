"""Stage `predict`: the ensemble's members on the test set - each member's fold models, each
through its test-time views (one batched pass per model and view), weighted as the ensemble
chose on OOF predictions. ``predict.source=STAGE`` predicts with one training stage's fold
models instead (views only when ``predict.tta`` names a number or a list)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from comp import artifacts
from comp.context import StageContext
from comp.modalities import modality_of
from comp.records import Member, ModelRef, Result, members_of, source_of
from comp.errors import ConfigError
from comp.files import write_csv, write_npy

NAME = "predict"
HELP = "predict the test set with the ensemble's members (or one training stage's fold models), test-time views included"
CONFIG = ("predict", "data.on_bad_image", "split.group_column")  # the ensemble's choices arrive through its output
TRAINS = False
# Until the budget's end: what is left is prediction's.
TIME = None
# The run plan's forecast of this stage, the submission and the report (reserve_seconds),
# measured on the digits demo at budget=5m: 8 fold models (bag's second seeds) with 4 views
# each predicted 360 rows in 5.8 s, the submission and report took under a second.
LOAD_SECONDS = 1.0  # a fold model loaded and its views traced
MODELS_A_FOLD = 2  # a fold's models, forecast: stage bag's second seed, or a blend's second member
FIXED_SECONDS = 3.0  # the test inputs read, the submission and the report written


def reserve_seconds(cfg, pass_seconds: float, folds: int) -> float:
    """The run plan's question: what predicting the test set, the submission and the report
    take after training (``pass_seconds``: one forward pass over the test rows)."""
    return FIXED_SECONDS + folds * MODELS_A_FOLD * model_seconds(cfg, pass_seconds)


def model_seconds(cfg, pass_seconds: float) -> float:
    """What one fold model adds to this stage: loaded, then each view a pass over the test rows."""
    return LOAD_SECONDS + forecast_views(cfg) * max(pass_seconds, 0.0)


def forecast_views(cfg) -> int:
    """The views a fold model passes its rows through, for a forecast (the original included)."""
    tta = cfg.predict.tta
    return 4 if tta == "auto" else len(tta) + 1 if isinstance(tta, list) else max(int(tta), 1)


def inputs(cfg, available, training=()) -> dict[str, str]:
    source = cfg.predict.source
    if source == "auto":  # the ensemble: it blends (or picks the best of) every training stage on OOF
        return {"ensemble": "ensemble"}
    from comp.stages import STAGES

    usable = [name for name in training if getattr(STAGES[name], "FOLD_MODELS", True)]
    if source not in [*training, "ensemble"]:
        raise ConfigError(f"predict.source={source!r}: use auto, ensemble or one of {', '.join(usable)}")
    if source != "ensemble" and source not in usable:
        raise ConfigError(f"predict.source={source}: stage {source} keeps no fold models for every fold; use auto, "
                          f"ensemble or one of {', '.join(usable)}")
    return {source: source}


def validate(cfg, competition, task) -> None:
    """An undecodable test image stops the run here, before any training (unless
    data.on_bad_image=skip, which predicts it from a blank image); a list of views in
    predict.tta names views the model offers."""
    from comp.stages.training import check_views

    check_views(cfg, competition, task)
    modality_of(competition).check_readable(competition, "test", cfg.reading())


def pick_source(ctx: StageContext) -> tuple[str, Result]:
    """The input stage with fold models and the best OOF score (ties: the earliest)."""
    results = {name: ctx.rundir.result(name) for name in ctx.upstream.values()}
    # Records of stages that never keep fold models say so; a baseline always has them.
    usable = {name: r for name, r in results.items() if r.fold_models}
    if not usable:
        raise ConfigError(f"predict: {', '.join(results)} kept no fold models for every fold; "
                          "set predict.source=baseline")
    objective = next(iter(usable.values())).objective
    best = objective.best(usable, key=lambda name: usable[name].score)  # ties: the earliest
    if len(results) > 1:
        ctx.log("OOF " + ", ".join(f"{n} {r.score:.5f}" + ("" if n in usable else " (no fold models)")
                                   for n, r in results.items()) + f": predicting with {best}")
    return best, usable[best]


def source_views(cfg, result: Result, task) -> list[str]:
    """The views a training stage's own fold models predict through (predict.source=STAGE):
    none for ``auto`` (the ensemble decides views on OOF), the views named in a predict.tta
    list, or for N the first N - 1 that its models offer."""
    tta = cfg.predict.tta
    if isinstance(tta, list):
        return list(tta)
    if tta == "auto" or not result.input_shape:
        return []
    from comp.api import InputSpec
    from comp.augmentation import views_for

    return [v.name for v in views_for(result.augmentations, InputSpec(tuple(result.input_shape)), task.kind, tta)]


def run(ctx: StageContext) -> dict:
    from comp.data.loading import load_inputs

    source, result = pick_source(ctx)
    comp, task = ctx.competition, ctx.task
    members = members_of(source, result, source_views(ctx.cfg, result, task))
    # The members' files live in the stages that trained them: checked like any input.
    for stage in sorted(member_stages(members) - set(ctx.upstream.values())):
        ctx.rundir.verify(stage)
    loaded: dict = {}
    each = {}
    for member in members:
        shape = tuple(member.input_shape) if member.input_shape else None
        if shape not in loaded:
            loaded[shape] = load_inputs(comp, "test", ctx.cfg.reading(), geometry=shape)[0]
            _report_bad(ctx, shape)
        each[member.name] = predict_member(ctx, member, loaded[shape])
    stack = result.extra.get("stack") or {}
    if stack.get("kept"):  # the ensemble's level-2 model combines the members (comp.stacking)
        from comp import stacking

        model = stacking.load(ctx.rundir.path / source / stack["file"])
        predictions = stacking.predict(task, model, [each[name] for name in stack["inputs"]])
    else:
        predictions = (sum(each[m.name] * m.weight for m in members) / sum(m.weight for m in members))
        predictions = predictions.astype(np.float32)
    decoding = result.decoding
    write_npy(ctx.work / artifacts.TEST_PROBS, predictions)
    write_csv(ctx.work / artifacts.TEST_TABLE, pd.DataFrame({
        comp.id_col: comp.test_ids,
        "prediction": task.decode(predictions, decoding),
    }))
    stacked = f", combined by the ensemble's {stack['model']}" if stack.get("kept") else ""
    ctx.log(f"{len(comp.test_ids)} test rows from {source}{stacked}: " + ", ".join(
        f"{m.name} x{m.weight:.2f} ({len(m.models)} folds"
        + (f", {len(m.views) + 1} views" if m.views else "") + ")" for m in members))
    return {
        "source": source_of(source, result),
        "score": result.score,
        "score_se": result.extra.get("score_se"),
        "score_all_rows": result.extra.get("score_all_rows", result.score),
        "metric": result.metric,
        "decoding": decoding,
    }


def member_stages(members: list[Member]) -> set[str]:
    """The stages whose files the members' models and weight sets are."""
    return {stage for member in members for stage in member.stages}


def member_models(run_path: Path, refs: list[ModelRef], reuse: bool = True) -> Iterator[tuple[ModelRef, Any]]:
    """(ref, FoldModel) for each model reference: the fold model with the ref's kept weight
    set (a top epoch, an average) assigned. With ``reuse`` a model file is loaded again only
    when a weight set replaced the weights a later ref wants as saved; without, every ref
    gets its own model (an exported graph holds them all at once)."""
    from comp.training.averaging import assign, load_weight_sets
    from comp.training.fold_model import load_fold_model

    model, loaded_from = None, None
    for ref in refs:
        if not reuse or ref.model != loaded_from:
            model, loaded_from = load_fold_model(run_path / ref.model), ref.model
        if ref.weights:
            assign(model.model, load_weight_sets(run_path / ref.weights)[0][ref.set])
            loaded_from = None
        yield ref, model


def predict_member(ctx: StageContext, member: Member, x) -> np.ndarray:
    """One member on every test row: the mean over its folds' models and its views."""
    import keras

    from comp.augmentation import views_for

    rows = np.arange(len(x))
    total = 0.0
    # One set of view layers for the member: a fold model's traced forwards are kept per view,
    # so its kept weight sets reuse them instead of tracing anew.
    views = views_for(member.augmentations, x.spec(), ctx.task.kind, member.views) if member.views else []
    for refs in member.models:
        model, fold_total = None, 0.0
        for _, model in member_models(ctx.rundir.path, refs):
            fold_total = fold_total + model.predictions(x, rows, ctx.task, ctx.cfg.predict.batch_size,
                                                        views if model.is_keras else []).astype(np.float64)
        # Each fold counts once, however many models it has (stage bag's folds may differ), as on OOF rows.
        total = total + fold_total / len(refs)
        if model is not None and model.is_keras:
            keras.backend.clear_session()
    return total / len(member.models)


def _report_bad(ctx: StageContext, shape) -> None:
    bad = modality_of(ctx.competition).unreadable(ctx.competition, "test", ctx.cfg.reading(), geometry=shape)
    if bad:  # only with data.on_bad_image=skip: they are predicted from a blank image
        ids = [ctx.competition.test_ids[i] for i in bad]
        ctx.log(f"{len(ids)} undecodable test image(s) predicted from a blank image: {', '.join(ids[:10])}")
