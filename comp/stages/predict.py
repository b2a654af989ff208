"""Stage `predict`: the fold models of a training stage, averaged on the test set."""
from __future__ import annotations

import numpy as np
import pandas as pd

from comp import artifacts
from comp.context import StageContext
from comp.errors import ConfigError
from comp.files import write_csv, write_npy

NAME = "predict"
HELP = "average the fold models of the training stage with the best OOF score on the test set"
CONFIG = ("predict", "data.on_bad_image", "split.group_column")
TRAINS = False


def inputs(cfg, available) -> dict[str, str]:
    from comp.stages import STAGES

    training = [name for name, module in STAGES.items() if module.TRAINS]
    source = cfg.predict.source
    if source == "auto":  # every finished (or planned) training stage; run() picks the best OOF
        finished = [name for name in training if name in available]
        return {name: name for name in finished or training[:1]}
    if source not in training:
        raise ConfigError(f"predict.source={source!r}: use auto or one of {', '.join(training)}")
    return {source: source}


def validate(cfg, competition, task) -> None:
    """An undecodable test image stops the run here, before any training (unless
    data.on_bad_image=skip, which predicts it from a blank image)."""
    if competition.modality == "image" and cfg.data.on_bad_image == "error":
        from comp.data.loading import image_set

        image_set(competition, cfg, "test")


def pick_source(ctx: StageContext) -> tuple[str, dict]:
    """The input stage with fold models and the best OOF score (ties: the earliest)."""
    records = {name: ctx.rundir.record(name) for name in ctx.upstream.values()}
    # Records of stages that never keep fold models say so; a baseline always has them.
    usable = {name: r for name, r in records.items() if r.get("fold_models", True)}
    if not usable:
        raise ConfigError(f"predict: {', '.join(records)} kept no fold models for every fold; "
                          "set predict.source=baseline")
    sign = 1 if next(iter(usable.values())).get("higher_is_better", True) else -1
    best = max(usable, key=lambda name: (sign * usable[name]["score"], -list(usable).index(name)))
    if len(records) > 1:
        ctx.log("OOF " + ", ".join(f"{n} {r['score']:.5f}" + ("" if n in usable else " (no fold models)")
                                   for n, r in records.items()) + f": predicting with {best}")
    return best, usable[best]


def run(ctx: StageContext) -> dict:
    from comp.data.loading import load_inputs
    from comp.training.fold_model import load_fold_model

    source, record = pick_source(ctx)
    folder = ctx.rundir.output(source)
    task, comp = ctx.task, ctx.competition
    geometry = tuple(record["input_shape"]) if "input_shape" in record else None
    x, _ = load_inputs(comp, ctx.cfg, "test", geometry=geometry)
    if comp.modality == "image":
        from comp.data.loading import image_set

        bad = image_set(comp, ctx.cfg, "test", geometry=geometry).bad
        if bad:  # only with data.on_bad_image=skip: they are predicted from a blank image
            ids = [comp.test_ids[i] for i in sorted(bad)]
            ctx.log(f"{len(ids)} undecodable test image(s) predicted from a blank image: {', '.join(ids[:10])}")
    rows = np.arange(len(x))
    total = None
    for k in range(record["folds"]):
        model = load_fold_model(folder / artifacts.FOLD_DIR.format(fold=k))
        pred = task.predictions(model.outputs(x, rows, task, ctx.cfg.predict.batch_size)).astype(np.float64)
        total = pred if total is None else total + pred
        if model.is_keras:
            import keras

            keras.backend.clear_session()
    predictions = (total / record["folds"]).astype(np.float32)
    decoding = record.get("decoding", {})
    write_npy(ctx.work / artifacts.TEST_PROBS, predictions)
    write_csv(ctx.work / artifacts.TEST_TABLE, pd.DataFrame({
        comp.id_col: comp.test_ids,
        "prediction": task.decode(predictions, decoding),
    }))
    ctx.log(f"{len(x)} test rows, mean of {record['folds']} fold models from {source}")
    return {
        "source": source,
        "score": record["score"],
        "metric": record["metric"],
        "decoding": decoding,
    }
