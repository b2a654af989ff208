"""Stage `baseline`: the configured model (default: small CNN) trained on every fold.

RECIPE.md 3: safe defaults (Adam 3e-4, He init, no augmentation), early stopping on the
validation metric, best weights kept; scored on out-of-fold predictions.
"""
from __future__ import annotations

from comp.context import StageContext
from comp.errors import DataError

NAME = "baseline"
HELP = "train the model on each fold with early stopping; OOF predictions and fold models"
CONFIG = ("seed", "task", "metric", "data", "train", "model", "predict.batch_size")
TRAINS = True


def inputs(cfg, available) -> dict[str, str]:
    # train.lr=auto trains with the LR suggested by stage check's LR range test.
    return {"split": "split", "check": "check"} if cfg.train.lr == "auto" else {"split": "split"}


def validate(cfg, competition, task) -> None:
    if competition.modality != "image":
        raise DataError(f"{competition.root}: training on tabular data is not in this version yet; "
                        "stages inspect and split work (comp run stage=split)")
    if not task.trainable:
        raise DataError(f"task {task.kind}: training is not in this version yet; "
                        "stages inspect and split work (comp run stage=split)")


def run(ctx: StageContext) -> dict:
    from comp.training.cv import cross_validate  # imports TensorFlow: only when training

    model = ctx.cfg.model
    return cross_validate(ctx, model.name, model.hp, ctx.cfg.train.augmentations)
