"""`runs/<run>/report.html`: one self-contained page about a run (every picture embedded as
a data URI, no script, no network), written at the end of every ``stage=all`` and by
``comp report``. It reads only what the stages published; a stage that has not run gets
a line saying so instead of its section's content.

Sections (``<section id=...>``): summary (inspect's problems, class balance, examples),
budget, stages (OOF, fold std, seconds), training (learning curves, the LR range test),
errors (confusion matrix or residuals, the most confident OOF errors as a gallery),
filters (the first convolution's kernels), histograms (per-layer weights, activations
and gradients on a probe batch; TensorBoard has them per epoch), regularize, tune,
ensemble (candidates, weights, TTA effect).
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from comp import artifacts
from comp.files import write_text

REPORT = "report.html"
GALLERY = 24  # confident OOF errors shown
PROBE_ROWS = 64  # training rows for the activation and gradient histograms

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:.3em}
.gallery figure{display:inline-block;margin:.3em;text-align:center;font-size:.75em}
.gallery img{width:72px;height:72px;image-rendering:pixelated;border:1px solid #ccc}
.note{color:#666}.problem{color:#a40}
"""


def write_report(run_path: Path, competition: Any, task: Any) -> Path:
    """Write ``run_path/report.html`` from the published stages; returns its path."""
    run = _Run(run_path, competition, task)
    sections = [("summary", "Data", _summary), ("budget", "Budget and time", _budget),
                ("stages", "Stages", _stages), ("training", "Training", _training),
                ("errors", "Errors", _errors), ("filters", "First-layer filters", _filters),
                ("histograms", "Weights, activations and gradients", _histograms),
                ("regularize", "Regularisation, one change at a time", _regularize),
                ("tune", "Tuning trials", _tune), ("ensemble", "Ensemble and test-time augmentation", _ensemble)]
    body = []
    for key, title, build in sections:
        try:
            content = build(run)
        except Exception as exc:  # a report must not fail a finished run: say what is missing
            content = _note(f"not available: {type(exc).__name__}: {exc}")
        body.append(f'<section id="{key}"><h2>{html.escape(title)}</h2>{content}</section>')
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>comp report: {html.escape(run.name)}</title>"
            f"<style>{STYLE}</style></head><body><h1>comp report: {html.escape(run.name)}</h1>"
            f"<p class='note'>{html.escape(competition.name)}: task {task.kind}, metric {task.metric_name} "
            f"({'higher' if task.higher_is_better else 'lower'} is better). Every number comes from the run "
            f"directory {html.escape(str(run_path))}.</p>{''.join(body)}</body></html>")
    path = run_path / REPORT
    write_text(path, page)
    return path


class _Run:
    def __init__(self, path: Path, competition: Any, task: Any):
        self.path, self.competition, self.task, self.name = path, competition, task, path.name

    def record(self, stage: str) -> dict | None:
        file = self.path / stage / "stage.json"
        return json.loads(file.read_text()) if file.is_file() else None

    def final(self) -> tuple[str, dict] | None:
        """The stage whose OOF predictions were submitted: the ensemble, else the best with fold models."""
        for stage in ("ensemble", "tune", "baseline"):
            record = self.record(stage)
            if record and record.get("fold_models", True) and (self.path / stage / artifacts.OOF_PROBS).is_file():
                return stage, record
        return None

    def targets(self) -> np.ndarray:
        comp = self.competition
        return self.task.encode(comp.train[comp.target_cols])

    def fold_of(self) -> np.ndarray | None:
        file = self.path / "split" / artifacts.FOLDS
        if not file.is_file():
            return None
        folds = pd.read_csv(file, dtype={"id": str}).set_index("id")["fold"]
        return folds.loc[self.competition.train[self.competition.id_col]].to_numpy()


# -- pieces ----------------------------------------------------------------------------------
def _note(text: str) -> str:
    return f"<p class='note'>{html.escape(text)}</p>"


def _png(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def _figure(draw: Callable[[Any], None], alt: str, size=(6, 4)) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=size)
    try:
        draw(fig)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
    finally:
        plt.close(fig)
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.5g}", na_rep="", border=0, escape=True)


def _missing(stage: str) -> str:
    return _note(f"stage {stage} has not run (comp run stage={stage})")


# -- sections --------------------------------------------------------------------------------
def _summary(run: _Run) -> str:
    record_file = run.path / "inspect" / "report.json"
    if not record_file.is_file():
        return _missing("inspect")
    report = json.loads(record_file.read_text())
    problems = report.get("problems", [])
    parts = [f"<p>{report.get('rows', {})}</p>".replace("{", "").replace("}", "").replace("'", "")]
    parts.append("<h3>Problems</h3>" + ("<ul>" + "".join(f"<li class='problem'>{html.escape(str(p))}</li>"
                                                          for p in problems) + "</ul>" if problems
                                         else _note("inspect found no problems")))
    for name, alt in (("class_counts.png", "class balance"), ("contact_sheet.png", "examples per class")):
        if (run.path / "inspect" / name).is_file():
            parts.append(_png(run.path / "inspect" / name, alt))
    return "".join(parts)


def _budget(run: _Run) -> str:
    rows = []
    for stage in _stages_run(run):
        record = run.record(stage)
        budget = record.get("budget", {})
        rows.append({"stage": stage, "seconds": record.get("seconds"), "given_s": budget.get("given_s"),
                     "used_s": budget.get("used_s")})
    if not rows:
        return _note("no stage has run")
    frame = pd.DataFrame(rows)
    note = "" if frame["given_s"].notna().any() else _note("no budget= was set: the training stages ran "
                                                            "their own time limits (regularize.time, tune.time)")
    return note + _table(frame)


def _stages_run(run: _Run) -> list[str]:
    from comp.stages import STAGES

    return [s for s in STAGES if run.record(s)]


def _stages(run: _Run) -> str:
    rows = []
    for stage in _stages_run(run):
        record = run.record(stage)
        if "score" not in record or stage in ("predict", "submit"):
            continue
        folds = record.get("fold_scores") or []
        rows.append({"stage": stage, "OOF": record["score"], "fold std": float(np.std(folds)) if folds else None,
                     "folds": len(folds) or None, "seconds": record.get("seconds"),
                     "model": (record.get("model") or {}).get("name", record.get("source", ""))})
    if not rows:
        return _missing("baseline")
    submitted = run.record("submit")
    extra = (f"<p>Submitted: {html.escape(Path(submitted['submission']).name)}</p>" if submitted else "")
    return _table(pd.DataFrame(rows)) + extra


def _training(run: _Run) -> str:
    parts = []
    curves = sorted((run.path / "baseline").glob("fold_*/learning_curve.png"))
    parts.extend(_png(p, f"learning curve {p.parent.name}") for p in curves[:5])
    if not curves:
        parts.append(_note("no learning curves (train.diagnostics=false, or no Keras baseline)"))
    lr = run.path / "check" / "lr_range.png"
    parts.append(_png(lr, "LR range test") if lr.is_file() else _note("the LR range test did not run"))
    return "".join(parts)


def _errors(run: _Run) -> str:
    final = run.final()
    if not final:
        return _missing("baseline")
    stage, record = final
    task, y = run.task, run.targets()
    oof = np.load(run.path / stage / artifacts.OOF_PROBS)
    fold_of = run.fold_of()
    rows = np.flatnonzero(fold_of >= 0) if fold_of is not None else np.arange(len(y))
    parts = [_note(f"OOF predictions of stage {stage}")]
    kind = task.kind
    if kind == "classification":
        from sklearn.metrics import ConfusionMatrixDisplay

        labels = list(task.classes)
        pred = oof[rows].argmax(1)

        def draw(fig):
            ax = fig.add_subplot(111)
            ConfusionMatrixDisplay.from_predictions(y[rows], pred, labels=list(range(len(labels))),
                                                    display_labels=labels, ax=ax, colorbar=False)
            ax.set_title("confusion matrix (OOF)")

        parts.append(_figure(draw, "confusion matrix", size=(max(4, 0.45 * len(labels) + 2),) * 2))
        confidence = oof[rows].max(1)
        wrong = rows[pred != y[rows]]
        order = wrong[np.argsort(-oof[wrong].max(1))][:GALLERY]
        captions = [f"{run.competition.train[run.competition.id_col].iloc[i]}: label {labels[y[i]]}, "
                    f"predicted {labels[oof[i].argmax()]} ({oof[i].max():.2f})" for i in order]
        del confidence
    elif kind == "regression":
        truth, pred = (np.asarray(task.metric_inputs(y[rows], oof[rows], record.get("decoding"), "values")[k])
                       .reshape(-1) for k in (0, 1))

        def draw(fig):
            ax = fig.add_subplot(111)
            ax.scatter(pred, truth - pred, s=6, alpha=0.5)
            ax.axhline(0, color="k", lw=0.8)
            ax.set_xlabel("OOF prediction")
            ax.set_ylabel("truth - prediction")
            ax.set_title("residuals (OOF)")

        parts.append(_figure(draw, "residual plot"))
        order = rows[np.argsort(-np.abs(truth - pred))][:GALLERY]
        captions = [f"{run.competition.train[run.competition.id_col].iloc[i]}: residual "
                    f"{(truth - pred)[np.searchsorted(rows, i)]:.3g}" for i in order]
    else:  # multilabel, sequence: the rows the model is most sure of and still gets wrong, by loss
        losses = _row_losses(task, y[rows], oof[rows])
        order = rows[np.argsort(-losses)][:GALLERY]
        truth = task.truth_strings(run.competition.train[run.competition.target_cols])
        decoded = task.decode(oof[order], record.get("decoding"))
        captions = [f"{run.competition.train[run.competition.id_col].iloc[i]}: label {truth[i]}, predicted {d}"
                    for i, d in zip(order, decoded)]
    parts.append("<h3>Most confident OOF errors (the likeliest label errors)</h3>")
    parts.append(_gallery(run, order, captions))
    return "".join(parts)


def _row_losses(task, y, oof) -> np.ndarray:
    p = np.clip(np.asarray(oof, dtype=np.float64), 1e-7, 1 - 1e-7)
    if task.kind == "multilabel":
        return -(y * np.log(p) + (1 - y) * np.log(1 - p)).sum(1)
    rows = np.arange(len(y))[:, None]
    return -np.log(p[rows, np.arange(y.shape[1])[None, :], y]).sum(1)


def _gallery(run: _Run, order: np.ndarray, captions: list[str]) -> str:
    if run.competition.modality != "image":
        frame = run.competition.train.iloc[order].copy()
        frame.insert(0, "why", captions)
        return _table(frame.head(GALLERY))
    if not len(order):
        return _note("no OOF errors")
    import cv2

    from comp.data.loading import image_set

    pixels = image_set(run.competition, _config(run), "train").pixels
    figures = []
    for i, caption in zip(order, captions):
        image = pixels[i]
        image = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
        ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        src = base64.b64encode(data.tobytes()).decode()
        figures.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{src}'>"
                       f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    return f"<div class='gallery'>{''.join(figures)}</div>"


def _config(run: _Run):
    """The run's own resolved config (image size, channels), as the stages used it."""
    import yaml

    from comp.config import Config

    saved = yaml.safe_load((run.path / "config.yaml").read_text())
    return Config(saved["config"] if "config" in saved else saved)


def _first_model(run: _Run):
    from comp.training.fold_model import load_fold_model

    folder = run.path / "baseline" / artifacts.FOLD_DIR.format(fold=0)
    if not (folder / "model.keras").is_file():
        return None
    return load_fold_model(folder).model


def _filters(run: _Run) -> str:
    import keras

    from comp.training.batchnorm import nested_layers

    model = _first_model(run)
    if model is None:
        return _note("the baseline has no Keras fold model")
    conv = next((layer for layer in nested_layers(model) if isinstance(layer, keras.layers.Conv2D)), None)
    if conv is None:
        return _note(f"model {model.name} has no convolution layer")
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

    return (_note("noisy or blank (dead) filters show a training problem at a glance; baseline fold 1")
            + _figure(draw, "first convolution filters", size=(columns * 0.9 + 1, np.ceil(count / columns) * 0.9 + 1)))


def _histograms(run: _Run) -> str:
    import keras
    import tensorflow as tf

    model = _first_model(run)
    if model is None:
        return _note("the baseline has no Keras fold model")
    from comp.data.loading import load_inputs

    shape = run.record("baseline").get("input_shape")
    inputs = load_inputs(run.competition, _config(run), "train", geometry=tuple(shape) if shape else None)[0]
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

    return (_note(f"baseline fold 1's model on {len(rows)} training rows (inference mode); TensorBoard "
                  "(baseline/fold_k/tensorboard) has them epoch by epoch")
            + _figure(draw, "per-layer histograms", size=(9, 1.6 * len(watched) + 0.5)))


def _regularize(run: _Run) -> str:
    table = run.path / "regularize" / "table.csv"
    return _table(pd.read_csv(table)) if table.is_file() else _missing("regularize")


def _tune(run: _Run) -> str:
    table = run.path / "tune" / "trials.csv"
    if not table.is_file():
        return _missing("tune")
    frame = pd.read_csv(table)
    return _table(frame) if len(frame) > 1 else _table(frame) + _note("no trial ran (tune.time or the budget)")


def _ensemble(run: _Run) -> str:
    table = run.path / "ensemble" / "candidates.csv"
    if not table.is_file():
        return _missing("ensemble")
    record = run.record("ensemble")
    frame = pd.read_csv(table)
    blend = record.get("blend", {})
    members = ", ".join(f"{m['name']} {m['weight']:.2f}" + (f" with {len(m['views'])} views" if m["views"] else "")
                        for m in record.get("members", []))
    tta = frame[frame["kind"] != "blend"]
    effect = ""
    if "oof_tta" in tta and tta["oof_tta"].notna().any():
        effect = _note("TTA effect (OOF with views - without): " + ", ".join(
            f"{r.candidate} {r.oof_tta - r.oof:+.5f}" for r in tta.itertuples() if not pd.isna(r.oof_tta)))
    return (f"<p>Result: {'blend' if blend.get('used') == 'blend' else 'best single candidate'}: "
            f"{html.escape(members)}; OOF {record['score']:.5f}</p>" + effect + _table(frame))
