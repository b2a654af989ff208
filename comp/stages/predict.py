"""Stage `predict`: the fold models of a training stage, averaged on the test images."""
from __future__ import annotations

import numpy as np
import pandas as pd

from comp import artifacts
from comp.context import StageContext
from comp.data.loading import image_set
from comp.errors import ConfigError
from comp.rundir import write_csv, write_npy

NAME = "predict"
HELP = "average the fold models of the latest training stage on the test set"
CONFIG = ("predict", "data.on_bad_image")
TRAINS = False


def inputs(cfg, available) -> dict[str, str]:
    from comp.stages import STAGES

    training = [name for name, module in STAGES.items() if module.TRAINS]
    source = cfg.predict.source
    if source == "auto":
        finished = [name for name in training if name in available]
        source = finished[-1] if finished else training[0]
    elif source not in training:
        raise ConfigError(f"predict.source={source!r}: use auto or one of {', '.join(training)}")
    return {"source": source}


def run(ctx: StageContext) -> dict:
    import keras  # TensorFlow loads only for the stages that need it

    source = ctx.upstream["source"]
    folder = ctx.rundir.output(source)
    record = ctx.rundir.record(source)
    height, width, channels = record["input_shape"]
    images = image_set(ctx.competition, ctx.cfg, "test", geometry=(height, width, channels))
    x = np.asarray(images.pixels)
    if images.bad:  # only with data.on_bad_image=skip: they are predicted from a blank image
        ids = [ctx.competition.test_ids[i] for i in sorted(images.bad)]
        ctx.log(f"{len(ids)} undecodable test image(s) predicted from a blank image: {', '.join(ids[:10])}")
    probs = np.zeros((len(x), len(record["classes"])), dtype=np.float64)
    for k in range(record["folds"]):
        model = keras.saving.load_model(folder / artifacts.FOLD_MODEL.format(fold=k))
        probs += model.predict(x, batch_size=ctx.cfg.predict.batch_size, verbose=0)
        keras.backend.clear_session()
    probs /= record["folds"]
    classes = record["classes"]
    write_npy(ctx.work / artifacts.TEST_PROBS, probs.astype(np.float32))
    write_csv(ctx.work / artifacts.TEST_TABLE, pd.DataFrame({
        ctx.competition.id_col: ctx.competition.test_ids,
        "prediction": [classes[i] for i in probs.argmax(1)],
    }))
    ctx.log(f"{len(x)} test images, mean of {record['folds']} fold models from {source}")
    return {
        "source": source,
        "score": record["score"],
        "metric": record["metric"],
        "classes": classes,
    }
