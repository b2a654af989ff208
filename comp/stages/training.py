"""What the training stages share: resolve their inputs from the run directory and the config,
call the training library (``comp.training.cv.cross_validate``) and publish its results."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from comp import artifacts
from comp.context import StageContext
from comp.errors import CompError, ConfigError
from comp.rundir import write_csv, write_json, write_npy


def read_folds(ctx: StageContext) -> np.ndarray:
    """Fold number of every train row, in train.csv order (-1: in no fold)."""
    path = ctx.rundir.output(ctx.upstream["split"]) / artifacts.FOLDS
    folds = pd.read_csv(path, dtype={"id": str}).set_index("id")["fold"]
    return folds.loc[ctx.competition.train[ctx.competition.id_col]].to_numpy()


def load_train(ctx: StageContext):
    """(train inputs, encoded targets) in train.csv order; notes on the inputs are logged."""
    from comp.data.loading import load_inputs

    inputs, notes = load_inputs(ctx.competition, ctx.cfg, "train")
    for note in notes:
        ctx.log(note)
    comp = ctx.competition
    return inputs, ctx.task.encode(comp.train[comp.target_cols])


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


def validate_model(cfg, competition, task) -> None:
    """The model plugin, its modality and task, the augmentations and the loss, checked before any work."""
    from comp.api import InputSpec
    from comp.registry import AUGMENTATIONS
    from comp.training.model import load_plugin

    load_plugin(model_name(cfg, competition, task), InputSpec((0,), competition.modality), task)
    for name in cfg.train.augmentations:
        aug = AUGMENTATIONS.load(name)
        if competition.modality not in aug.modalities or task.kind not in aug.tasks:
            raise ConfigError(f"augmentation '{name}' is for {'/'.join(aug.modalities)} inputs and "
                              f"{', '.join(aug.tasks)} tasks, not {competition.modality} {task.kind}; "
                              "remove it from train.augmentations")
    if cfg.train.loss not in task.losses:
        raise ConfigError(f"train.loss={cfg.train.loss}: task {task.kind} takes {', '.join(task.losses)}")


def resolve_lr(ctx: StageContext) -> tuple[float, str]:
    """(learning rate, where it came from): train.lr, or for ``auto`` the check stage's pick."""
    lr = ctx.cfg.train.lr
    if lr != "auto":
        return float(lr), "train.lr"
    if "check" not in ctx.upstream:  # a training stage whose inputs() omits check
        raise CompError(f"train.lr=auto: stage {ctx.name} does not read stage check; set train.lr=NUMBER")
    suggested = ctx.rundir.record(ctx.upstream["check"]).get("suggested_lr")
    if not suggested:
        raise CompError(
            "train.lr=auto: stage check suggested no LR (its LR range test failed or did not fit the "
            f"budget; see {ctx.rundir.path / 'check' / 'stage.json'}); set train.lr=NUMBER"
        )
    return float(suggested), "check"


def train_spec(cfg, lr: float):
    from comp.training.spec import TrainSpec

    t = cfg.train
    return TrainSpec(lr=lr, epochs=t.epochs, batch_size=t.batch_size, patience=t.patience, loss=t.loss,
                     strategy=t.strategy, lr_scaling=t.lr_scaling, mixed_precision=t.mixed_precision,
                     bn_momentum=t.bn_momentum, diagnostics=t.diagnostics,
                     predict_batch_size=cfg.predict.batch_size)


def cross_validate_stage(ctx: StageContext, out: Path | None = None) -> dict[str, Any]:
    """Train the configured model on every fold into ``out`` (default: the stage's work
    folder) and write the run directory's OOF artifacts; return the stage record."""
    from comp.progress import Progress
    from comp.training.cv import cross_validate
    from comp.training.spec import ModelSpec

    comp, task, cfg = ctx.competition, ctx.task, ctx.cfg
    out = out or ctx.work
    fold_of = read_folds(ctx)
    inputs, y = load_train(ctx)
    name = model_name(cfg, comp, task)
    model = ModelSpec(name, dict(cfg.model.hp), tuple(cfg.train.augmentations))
    lr, lr_source = resolve_lr(ctx)
    spec = train_spec(cfg, lr)
    n_folds = int(fold_of.max()) + 1
    shape = inputs.spec().shape
    what = f"{len(inputs)} images {shape}" if comp.modality == "image" else f"{len(inputs)} rows, {shape[0]} columns"
    ctx.log(f"{n_folds} folds, {what}, task {task.kind}, model {name}, metric {task.metric_name}, "
            f"lr {lr:.3g} ({lr_source})")
    progress = Progress()

    def hooks(k: int, folds: int):
        return progress.epoch_hook(ctx.name, k, folds, cfg.train.epochs, ctx.budget, task.metric_name)

    def log(message: str) -> None:
        progress.clear()
        ctx.log(message)

    result = cross_validate(inputs, y, fold_of, task, model, spec, out, seed=cfg.seed,
                            deadline=ctx.budget.training_deadline(), log=log, epoch_hooks=hooks, title=ctx.name)
    write_npy(out / artifacts.OOF_PROBS, result.oof)
    write_json(out / artifacts.DECODING, result.decoding)
    write_csv(out / artifacts.OOF_TABLE, pd.DataFrame({
        comp.id_col: comp.train[comp.id_col],
        "fold": fold_of,
        comp.target_cols[0] if len(comp.target_cols) == 1 else "target": task.truth_strings(comp.train[comp.target_cols]),
        "prediction": task.decode(result.oof, result.decoding),
    }))
    others = ", ".join(f"{k} {v:.4f}" for k, v in result.scores.items() if k != task.metric_name)
    if others:
        ctx.log(f"OOF also: {others}")
    record = {
        "score": result.score,
        "metric": task.metric_name,
        "higher_is_better": task.higher_is_better,
        "scores": result.scores,
        "fold_scores": [f["score"] for f in result.folds],
        "stopped_by_budget": result.stopped_by_budget,
        "task": task.kind,
        "model": {**model.to_dict(), "hp": result.hp},
        "folds": n_folds,
        "decoding": result.decoding,
        "lr": result.folds[0].get("lr", lr),  # what the optimizer used: scaled to the replicas
        "replicas": result.folds[0].get("replicas", 1),
        "lr_source": lr_source,
    }
    if comp.modality == "image":
        record["input_shape"] = list(shape)
    return record
