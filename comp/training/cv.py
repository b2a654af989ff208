"""K-fold training on the persisted folds: OOF predictions, fold models, resumable per fold."""
from __future__ import annotations

import gc
import time
from typing import Any

import keras
import numpy as np
import pandas as pd

from comp import artifacts
from comp.api import InputSpec
from comp.context import StageContext
from comp.progress import Progress, resident_mb
from comp.data.loading import image_set
from comp.errors import CompError
from comp.rundir import read_json, write_csv, write_json, write_npy
from comp.training.batchnorm import resolve_momentum, steps_per_epoch
from comp.training.diagnostics import Diagnostics, probe_batch
from comp.training.loop import EpochCallbacks
from comp.training.fit import predict, save_model, train_fold
from comp.training.model import build_model


def read_folds(ctx: StageContext) -> np.ndarray:
    """Fold number of every train row, in train.csv order."""
    path = ctx.rundir.output(ctx.upstream["split"]) / artifacts.FOLDS
    folds = pd.read_csv(path, dtype={"id": str}).set_index("id")["fold"]
    return folds.loc[ctx.competition.train[ctx.competition.id_col]].to_numpy()


def load_train(ctx: StageContext) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    """Train images (uint8), encoded labels and the image geometry, in train.csv order."""
    comp, cfg = ctx.competition, ctx.cfg
    images = image_set(comp, cfg, "train")
    return np.asarray(images.pixels), ctx.task.encode(comp.train[ctx.task.target]), images.geometry


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


def cross_validate(ctx: StageContext, model_name: str, fixed_hp: dict[str, Any],
                   augmentations: list[str]) -> dict[str, Any]:
    """Train one model per fold into ``ctx.work``; return the stage record's scores.

    Folds finished by an interrupted earlier attempt (``fold_k/done.json``) are reused.
    """
    comp, task, cfg = ctx.competition, ctx.task, ctx.cfg
    fold_of = read_folds(ctx)
    n_folds = int(fold_of.max()) + 1
    x, y, geometry = load_train(ctx)
    spec = InputSpec(geometry)
    oof = np.zeros((len(x), task.num_classes), dtype=np.float32)
    folds, hp_values = [], {}
    train_deadline = ctx.budget.training_deadline()
    lr, lr_source = resolve_lr(ctx)
    progress = Progress()
    ctx.log(f"{n_folds} folds, {len(x)} images {geometry}, model {model_name}, lr {lr:.3g} ({lr_source})")

    for k in range(n_folds):
        fold_dir = ctx.work / f"fold_{k}"
        val = fold_of == k
        done = fold_dir / "done.json"
        if done.is_file():
            info = read_json(done)
            oof[val] = np.load(fold_dir / "val_pred.npy")
            ctx.log(f"fold {k + 1}/{n_folds}: finished earlier, {task.metric}={info['score']:.4f}")
        else:
            now = time.monotonic()
            deadline = now + (train_deadline - now) / (n_folds - k)

            fit_rows = (fold_of >= 0) & ~val  # fold -1: rows split left out (bad images)

            def build():
                nonlocal hp_values
                # Called under the strategy's scope: the steps per epoch count its replicas.
                steps = steps_per_epoch(int(fit_rows.sum()), cfg.train.batch_size)
                model, hp_values = build_model(spec, task, model_name, fixed_hp, augmentations,
                                               bn_momentum=resolve_momentum(cfg.train.bn_momentum, steps))
                return model

            diagnostics = Diagnostics(
                fold_dir, task, probe_batch(x[fit_rows], y[fit_rows], seed=cfg.seed * 100 + k),
                batch_size=cfg.train.batch_size, bn_setting=cfg.train.bn_momentum,
                title=f"{ctx.name} fold {k + 1}/{n_folds}") if cfg.train.diagnostics else None
            hooks = diagnostics.callbacks() if diagnostics else EpochCallbacks()
            hooks.on_epoch_end.append(progress.epoch_hook(ctx.name, k, n_folds, cfg.train.epochs, ctx.budget,
                                                          task.monitor[0]))
            result = train_fold(build, task, (x[fit_rows], y[fit_rows]), (x[val], y[val]), cfg.train,
                                seed=cfg.seed * 100 + k, fold_dir=fold_dir, deadline=deadline, lr=lr,
                                callbacks=hooks)
            progress.clear()
            diagnosis = diagnostics.finish(result.best_epoch) if diagnostics else []
            pred = predict(result.model, x[val], cfg.predict.batch_size)
            oof[val] = pred
            save_model(result.model, ctx.work / artifacts.FOLD_MODEL.format(fold=k))
            write_npy(fold_dir / "val_pred.npy", pred.astype(np.float32))
            info = {
                "score": task.score(y[val], pred),
                "epochs": result.epochs_run,
                "best_epoch": result.best_epoch,
                "stopped_by_budget": result.stopped_by_budget,
                "seconds": round(result.seconds, 2),
                "hp": hp_values,
                "lr": result.lr,  # after scaling for the replicas
                "replicas": result.replicas,
                "resumed_from_epoch": result.resumed_from,
                "diagnosis": diagnosis,
            }
            budget_note = ", cut short by the budget" if result.stopped_by_budget else ""
            resume_note = f", resumed after epoch {result.resumed_from}" if result.resumed_from else ""
            ctx.log(f"fold {k + 1}/{n_folds}: {task.metric}={info['score']:.4f} "
                    f"(best epoch {result.best_epoch} of {result.epochs_run}, {result.seconds:.0f}s, "
                    f"{result.replicas} replica(s){resume_note}{budget_note})")
            for verdict in diagnosis:  # RECIPE.md 4; details in fold_k/diagnostics.json
                ctx.log(f"fold {k + 1}/{n_folds} diagnosis: {verdict}")
            del result
            keras.backend.clear_session()
            gc.collect()
            # Memory after the fold's models are freed; a growth across folds is a leak.
            info["rss_mb_after"] = resident_mb()
            write_json(done, info)  # last: it marks the fold finished for a resumed run
        folds.append(info)

    used = fold_of >= 0
    score = task.score(y[used], oof[used])
    write_npy(ctx.work / artifacts.OOF_PROBS, oof)
    write_csv(ctx.work / artifacts.OOF_TABLE, pd.DataFrame({
        comp.id_col: comp.train[comp.id_col],
        "fold": fold_of,
        task.target: comp.train[task.target],
        "prediction": task.decode(oof),
    }))
    per_fold = ", ".join(f"{f['score']:.4f}" for f in folds)
    ctx.log(f"OOF {task.metric} = {score:.5f} (folds: {per_fold})")
    return {
        "score": score,
        "metric": task.metric,
        "higher_is_better": task.higher_is_better,
        "fold_scores": [f["score"] for f in folds],
        "stopped_by_budget": any(f["stopped_by_budget"] for f in folds),
        "classes": list(task.classes),
        "input_shape": list(geometry),
        "model": {"name": model_name, "hp": folds[0]["hp"], "augmentations": list(augmentations)},
        "folds": n_folds,
        "lr": folds[0].get("lr", lr),  # what the optimizer used: train.lr or check's, scaled to the replicas
        "replicas": folds[0].get("replicas", 1),
        "lr_source": lr_source,
    }
