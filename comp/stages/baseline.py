"""Stage `baseline`: the configured model trained on every fold.

docs/recipe.md 3 and 5: the recipe's defaults (AdamW, the LR from stage check, warmup then
cosine decay planned to fit the budget, light augmentation), the best epoch's weights kept by
the competition metric; scored on out-of-fold predictions. The model is ``model.name``, or
for ``auto`` the task kind's default for the competition's inputs; ``baseline.variants``
adds more models trained the same way beside it (``baseline/variants/<name>/``), for the
ensemble stage to blend.
"""
from __future__ import annotations

from comp.context import StageContext
from comp.stages.training import validate_model

NAME = "baseline"
HELP = "train the model on each fold with the recipe (planned to fit budget=); OOF predictions and fold models"
CONFIG = ("seed", "baseline", "task", "metric", "data", "train", "model", "predict.batch_size", "split.group_column")
TRAINS = True


def inputs(cfg, available) -> dict[str, str]:
    # train.lr=auto trains with the LR suggested by stage check's LR range test.
    return {"split": "split", "check": "check"} if cfg.train.lr == "auto" else {"split": "split"}


def validate(cfg, competition, task) -> None:
    validate_model(cfg, competition, task, variants=True)


def run(ctx: StageContext) -> dict:
    from comp.stages.training import cross_validate_stage  # imports TensorFlow: only when training

    return cross_validate_stage(ctx)
