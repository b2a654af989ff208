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
from comp.data.images import load_images
from comp.rundir import read_json, write_csv, write_json, write_npy
from comp.training.fit import save_model, train_fold
from comp.training.model import build_model


def read_folds(ctx: StageContext) -> np.ndarray:
    """Fold number of every train row, in train.csv order."""
    path = ctx.rundir.output(ctx.upstream["split"]) / artifacts.FOLDS
    folds = pd.read_csv(path, dtype={"id": str}).set_index("id")["fold"]
    return folds.loc[ctx.competition.train[ctx.competition.id_col]].to_numpy()


def cross_validate(ctx: StageContext, model_name: str, fixed_hp: dict[str, Any],
                   augmentations: list[str]) -> dict[str, Any]:
    """Train one model per fold into ``ctx.work``; return the stage record's scores.

    Folds finished by an interrupted earlier attempt (``fold_k/done.json``) are reused.
    """
    comp, task, cfg = ctx.competition, ctx.task, ctx.cfg
    fold_of = read_folds(ctx)
    n_folds = int(fold_of.max()) + 1
    x, geometry = load_images(comp.train_images, cfg.data.image_size, cfg.data.channels)
    y = task.encode(comp.train[task.target])
    spec = InputSpec(geometry)
    oof = np.zeros((len(x), task.num_classes), dtype=np.float32)
    folds, hp_values = [], {}
    train_deadline = ctx.budget.training_deadline()
    ctx.log(f"{n_folds} folds, {len(x)} images {geometry}, model {model_name}")

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

            def build():
                nonlocal hp_values
                model, hp_values = build_model(spec, task, model_name, fixed_hp, augmentations)
                return model

            result = train_fold(build, task, (x[~val], y[~val]), (x[val], y[val]), cfg.train,
                                seed=cfg.seed * 100 + k, fold_dir=fold_dir, deadline=deadline)
            pred = result.model.predict(x[val], batch_size=cfg.predict.batch_size, verbose=0)
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
            }
            write_json(done, info)
            budget_note = ", cut short by the budget" if result.stopped_by_budget else ""
            ctx.log(f"fold {k + 1}/{n_folds}: {task.metric}={info['score']:.4f} "
                    f"(best epoch {result.best_epoch} of {result.epochs_run}, {result.seconds:.0f}s{budget_note})")
            del result
            keras.backend.clear_session()
            gc.collect()
        folds.append(info)

    score = task.score(y, oof)
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
    }
