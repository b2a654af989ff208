"""Stage `baseline`: the configured model (default: small CNN) trained on every fold.

RECIPE.md 3: safe defaults (Adam 3e-4, He init, no augmentation), early stopping on the
validation metric, best weights kept; scored on out-of-fold predictions.
"""
from __future__ import annotations

from comp.context import StageContext
from comp.training.cv import cross_validate

NAME = "baseline"
HELP = "train the model on each fold with early stopping; OOF predictions and fold models"
CONFIG = ("seed", "task", "metric", "data", "train", "model", "predict.batch_size")
TRAINS = True


def inputs(cfg, available) -> dict[str, str]:
    return {"split": "split"}


def run(ctx: StageContext) -> dict:
    model = ctx.cfg.model
    return cross_validate(ctx, model.name, model.hp, ctx.cfg.train.augmentations)
