"""Stage `baseline`: the configured model trained on every fold.

docs/recipe.md 3 and 5: the recipe's defaults (AdamW, the LR from stage check, warmup then
cosine decay planned to fit the budget, light augmentation), the best epoch's weights kept by
the competition metric; scored on out-of-fold predictions. The model is ``model.name``, or
for ``auto`` the task kind's default for the competition's inputs; ``baseline.variants``
adds more models trained the same way beside it (``baseline/variants/<name>/``), for the
ensemble stage to blend.
"""
from __future__ import annotations

import numpy as np

from comp import artifacts
from comp.budget import Share
from comp.context import StageContext
from comp.html import figure, note
from comp.stages.training import validate_model

NAME = "baseline"
HELP = "train the model on each fold with the recipe (planned to fit budget=); OOF predictions and fold models"
CONFIG = ("seed", "baseline.variants", "task", "metric", "data", "train", "model", "predict.batch_size", "split.group_column")
TRAINS = True
# Of the training time: the baseline needs enough epochs to be a fair reference (docs/recipe.md 10).
# With a run plan (stage check measured the model's speed) it is funded first instead.
TIME = Share(training=0.4)
MAIN = True  # the main model: the run plan (comp.planner) sizes its schedule and inputs first


def inputs(cfg, available, training=()) -> dict[str, str]:
    # train.lr=auto trains with the LR suggested by stage check's LR range test; under a budget
    # the run plan sizes training (its input size, its epochs) from the speed check measures.
    return {"split": "split", "check": "check"} if cfg.train.lr == "auto" or cfg.budget else {"split": "split"}


def validate(cfg, competition, task) -> None:
    validate_model(cfg, competition, task, variants=True)


def key_values(cfg, competition, task) -> dict:
    """What ``baseline.variants=auto`` resolves to: it depends on more than the stage's
    settings (``ensemble.candidates``, the table's rows, the plugins installed), and a change
    to any of them must retrain the portfolio, not reuse one trained without its models."""
    from comp.stages.training import variant_models

    picked = variant_models(cfg, competition, task) if cfg.baseline.variants == "auto" else []
    # none (images, ensemble.candidates without variants): the key stays what it was before
    return {"variants": [[name, hp] for name, hp in picked]} if picked else {}


def run(ctx: StageContext) -> dict:
    from comp.stages.training import cross_validate_stage  # imports TensorFlow: only when training

    return cross_validate_stage(ctx, take_out_failed_folds=True)


# -- the report's sections: the baseline's first fold model and its learning curves --------------
PROBE_ROWS = 64  # training rows for the activation and gradient histograms


def _report_curves(run) -> str:
    from comp.html import note, png
    from comp.training.diagnostics import CURVE

    curves = sorted(run.folder(NAME).glob(f"fold_*/{CURVE}")) if run.record(NAME) else []
    parts = [png(p, f"learning curve {p.parent.name}") for p in curves[:5]]
    return "".join(parts) if curves else note("no learning curves (train.diagnostics=false, or no Keras baseline)")


def _first_model(run):
    from comp.training.fold_model import load_fold_model

    folder = run.folder(NAME) / artifacts.FOLD_DIR.format(fold=0)
    if not (folder / "model.keras").is_file():
        return None
    return load_fold_model(folder).model


def _report_filters(run) -> str:
    import keras

    from comp.training.batchnorm import nested_layers

    model = _first_model(run)
    if model is None:
        return note("the baseline has no Keras fold model")
    conv = next((layer for layer in nested_layers(model) if isinstance(layer, keras.layers.Conv2D)), None)
    if conv is None:
        return note(f"model {model.name} has no convolution layer")
    kernel = np.asarray(conv.kernel.numpy())  # (h, w, in, out)
    count = kernel.shape[-1]
    columns = min(count, 8)

    def draw(fig):
        for f in range(count):
            ax = fig.add_subplot(int(np.ceil(count / columns)), columns, f + 1)
            k = kernel[..., f]
            k = k.mean(axis=2) if k.shape[2] != 3 else (k - k.min()) / max(float(np.ptp(k)), 1e-12)
            ax.imshow(k, cmap="gray" if k.ndim == 2 else None, interpolation="nearest")
            ax.axis("off")
        fig.suptitle(f"{conv.name}: {count} filters {kernel.shape[0]}x{kernel.shape[1]}")

    return (note("noisy or blank (dead) filters show a training problem at a glance; baseline fold 1")
            + figure(draw, "first convolution filters", size=(columns * 0.9 + 1, np.ceil(count / columns) * 0.9 + 1)))


def _report_histograms(run) -> str:
    import keras
    import tensorflow as tf

    model = _first_model(run)
    if model is None:
        return note("the baseline has no Keras fold model")
    from comp.data.loading import load_inputs

    shape = run.result(NAME).input_shape
    inputs = load_inputs(run.competition, "train", run.config.reading(), geometry=tuple(shape) if shape else None)[0]
    rows = np.arange(min(PROBE_ROWS, len(inputs)))
    x, y = inputs.take(rows), run.targets()[rows]
    # comp's models wrap the plugin's network (scaling and augmentation first): probe the network
    # itself on the preprocessed batch, where every layer's output is reachable
    body = next((layer for layer in reversed(model.layers) if isinstance(layer, keras.Model)), None)
    if body is not None:
        for layer in model.layers:
            if layer is body:
                break
            if not isinstance(layer, keras.layers.InputLayer):
                x = layer(x, training=False)
    network = body or model
    watched = [layer for layer in network.layers if layer.weights and isinstance(
        layer, (keras.layers.Conv2D, keras.layers.Dense))][:8]
    probe = keras.Model(network.inputs, [layer.output for layer in watched] + [network.output])
    loss_fn = run.task.loss()
    with tf.GradientTape() as tape:
        *activations, out = probe(x, training=False)
        loss = tf.reduce_mean(loss_fn(y, out))
    grads = tape.gradient(loss, [layer.weights[0] for layer in watched])

    def draw(fig):
        for r, layer in enumerate(watched):
            for c, (values, what) in enumerate(((layer.weights[0].numpy(), "weights"),
                                                (np.asarray(activations[r]), "activations"),
                                                (np.asarray(grads[r]) if grads[r] is not None else np.zeros(1),
                                                 "gradients"))):
                ax = fig.add_subplot(len(watched), 3, r * 3 + c + 1)
                ax.hist(np.ravel(values), bins=50, color=("#4477aa", "#228833", "#ee6677")[c])
                ax.set_title(f"{layer.name} {what}", fontsize=7)
                ax.tick_params(labelsize=6)

    return (note(f"baseline fold 1's model on {len(rows)} training rows (inference mode); TensorBoard "
                  "(baseline/fold_k/tensorboard) has them epoch by epoch")
            + figure(draw, "per-layer histograms", size=(9, 1.6 * len(watched) + 0.5)))


REPORT = {"training": _report_curves, "filters": _report_filters, "histograms": _report_histograms}
