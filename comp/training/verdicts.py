"""Verdicts from per-epoch training diagnostics (docs/recipe.md 4): pure rules over the rows of
diagnostics.csv, each finding one line that says what to do. Thresholds are named below."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from comp.objective import Objective
from comp.training.batchnorm import auto_momentum

NO_PROBLEMS = "no problems seen"

# Verdict thresholds (docs/recipe.md 4).
RATIO_HIGH = 1e-2  # update/weight ratio per step above this in several layers: LR too high
RATIO_LOW = 1e-5  # median update/weight ratio below this: LR too low
GRAD_HUGE = 1e3  # global gradient norm above this, or grown 100x: exploding
GRAD_GROWTH = 100.0
GRAD_TINY = 1e-6  # global gradient norm below this while train accuracy is poor: vanishing
DEPTH_GRAD_RATIO = 1e-4  # first kernel's gradient norm / largest kernel's: vanishing through depth
GAP = 0.1  # train - val accuracy above this for GAP_EPOCHS epochs in a row: overfitting
GAP_EPOCHS = 3
INFERENCE_GAP = 0.15  # train accuracy - inference-mode accuracy on the probe's training rows
DEAD = 0.5  # fraction of dead units in a ReLU layer
COLLAPSE = 1e-2  # activation variance of a deeper ReLU layer / the first one's
IMPROVING_EPOCHS = 3  # "still improving": the metric gained over the last this many epochs ...
IMPROVING_GAIN = 0.002  # ... by more than this share of its value, the best epoch being among the last two


def _epochs(epochs: Sequence[int]) -> str:
    epochs = list(epochs)
    if len(epochs) == 1:
        return f"epoch {epochs[0]}"
    if epochs == list(range(epochs[0], epochs[-1] + 1)):
        return f"epochs {epochs[0]}-{epochs[-1]}"
    return "epochs " + ", ".join(map(str, epochs))


def _columns(frame: pd.DataFrame, prefix: str) -> list[str]:
    return [c for c in frame.columns if c.startswith(prefix + "/")]


def diagnose(records: pd.DataFrame | list[dict], *, num_classes: int | None = None,
             chance: float | None = None, bn_layers: int = 0, bn_momentum: float | None = None,
             steps_per_epoch: int | None = None, accuracy: str | None = "accuracy",
             higher_is_better: bool = True, metric: str = "score") -> list[str]:
    """Findings from per-epoch records (the rows of diagnostics.csv), each one line. The
    probe's rules read the rows whose ``probed`` is 1 (all rows when there is no such column).

    ``accuracy`` names the task's accuracy-like metric (a share in [0, 1]; its columns are
    ``<name>``, ``val_<name>`` and ``probe_<name>``); None turns off the rules that need one
    (chance level, train/val gap). ``val_score`` is the competition metric (``metric``,
    ``higher_is_better``). Returns ``["no problems seen"]`` when no rule fires.
    """
    f = pd.DataFrame(records).reset_index(drop=True)
    if not len(f):
        return [NO_PROBLEMS]
    if "epoch" not in f:
        f["epoch"] = np.arange(1, len(f) + 1)
    epoch = f["epoch"].astype(int).to_numpy()
    found: list[str] = []
    col = lambda name: f[name].astype(float).to_numpy() if name in f else None  # noqa: E731
    # Rows without a ``probed`` value (written before the probe was scheduled) were all probed.
    p = f[f["probed"].astype(float).fillna(1.0) > 0].reset_index(drop=True) if "probed" in f else f
    p_epoch = p["epoch"].astype(int).to_numpy()
    pcol = lambda name: p[name].astype(float).to_numpy() if name in p else None  # noqa: E731

    # Learning rate: update/weight ratio per step (~1e-3 is healthy).
    ratio_cols = _columns(p, "update_ratio")
    if ratio_cols and len(p):
        ratios = p[ratio_cols].astype(float)
        high = (ratios > RATIO_HIGH).sum(axis=1).to_numpy()
        need = min(2, len(ratio_cols))
        if high.max() >= need:
            i = int(np.argmax(high))
            found.append(
                f"LR likely too high: update ratio {np.nanmax(ratios.iloc[i]):.0e} (median "
                f"{np.nanmedian(ratios.iloc[i]):.0e}, expected ~1e-3) in {high[i]} of {len(ratio_cols)} layers "
                f"at epoch {p_epoch[i]}; lower train.lr (e.g. 10x)")
        values = ratios.to_numpy().ravel()
        values = values[np.isfinite(values)]
        if len(values) and np.median(values) < RATIO_LOW:
            found.append(f"LR likely too low: median update ratio {np.median(values):.0e} "
                         f"(expected ~1e-3); raise train.lr")

    # Gradients.
    grad, loss = pcol("grad_norm"), col("loss")
    acc = col(accuracy) if accuracy else None
    if grad is not None and len(p):
        bad = np.concatenate([p_epoch[~np.isfinite(grad)], epoch[~np.isfinite(loss)] if loss is not None else []])
        first_finite = grad[np.isfinite(grad)]
        if len(bad):
            found.append(f"exploding gradients: loss or gradient norm not finite from epoch {int(bad.min())}; "
                         "lower train.lr")
        elif len(first_finite):
            start = max(grad[0], 1e-12)
            peak = int(np.argmax(grad))
            if grad[peak] > GRAD_HUGE or (peak > 0 and grad[peak] / start > GRAD_GROWTH):
                found.append(f"exploding gradients: gradient norm {grad[0]:.3g} at epoch {p_epoch[0]} -> "
                             f"{grad[peak]:.3g} at epoch {p_epoch[peak]}; lower train.lr or clip gradients")
        p_acc, p_loss = pcol(accuracy) if accuracy else None, pcol("loss")
        unconverged = p_acc < 0.9 if p_acc is not None else (p_loss > 0.1 if p_loss is not None
                                                             else np.ones(len(p), bool))
        tiny = np.isfinite(grad) & (grad < GRAD_TINY) & unconverged
        if tiny.any():
            found.append(f"vanishing gradients: gradient norm {np.nanmin(grad[tiny]):.1e} in "
                         f"{_epochs(p_epoch[tiny])} while training has not converged")
        else:
            gcols = _columns(p, "grad_norm")
            if len(gcols) >= 2:
                g0 = p[gcols].iloc[0].astype(float)
                if np.isfinite(g0).all() and g0.max() > 0 and g0.iloc[0] / g0.max() < DEPTH_GRAD_RATIO:
                    found.append(f"vanishing gradients through depth: gradient norm {g0.iloc[0]:.1e} in "
                                 f"{gcols[0].split('/', 1)[1]} vs {g0.max():.1e} in {g0.idxmax().split('/', 1)[1]} "
                                 f"at epoch {p_epoch[0]}")

    # Inference mode broken (training rows score far worse with training=False than while
    # training), or validation at chance while training is good: BatchNorm statistics or a
    # preprocessing mismatch. Validation and best-epoch selection are misled while it lasts.
    val_acc = col(f"val_{accuracy}") if accuracy else None
    probe_acc = col(f"probe_{accuracy}") if accuracy else None
    if chance is None and num_classes:
        chance = 1.0 / num_classes
    lag = np.zeros(len(f), bool)
    stuck = np.zeros(len(f), bool)
    if acc is not None and probe_acc is not None:
        lag = np.isfinite(probe_acc) & (acc - probe_acc > INFERENCE_GAP)
    if acc is not None and val_acc is not None and chance:
        stuck = (val_acc <= chance + min(0.5 * chance, 0.1)) & (acc >= chance + 0.5 * (1 - chance))
    if lag.any() or stuck.any():
        which = lag | stuck
        i = int(np.argmax(np.where(which, acc - (val_acc if val_acc is not None else probe_acc), -np.inf)))
        msg = f"val {accuracy} {val_acc[i]:.2f} while train is {acc[i]:.2f} at epoch {epoch[i]}" if val_acc is not None \
            else f"train {accuracy} {acc[i]:.2f} at epoch {epoch[i]}"
        if stuck.any():
            msg += f" (at chance {chance:.2f} in {_epochs(epoch[stuck])})"
        if lag.any():
            worst = probe_acc[i] if lag[i] else float(np.min(probe_acc[lag]))  # epoch i may be unprobed
            msg += (f", and training rows score only {worst:.2f} in inference mode ({_epochs(epoch[lag])}): "
                    "BatchNorm statistics lag the weights or inference-mode preprocessing differs")
        else:
            msg += ": BatchNorm statistics or preprocessing mismatch"
            probed_stuck = probe_acc[stuck & np.isfinite(probe_acc)] if probe_acc is not None else []
            if len(probed_stuck) and np.all(probed_stuck >= chance + 0.5 * (1 - chance)):
                msg += (f" (training rows score {np.min(probed_stuck):.2f} in inference mode: "
                        "the validation images likely differ in preprocessing or labels)")
        if bn_layers:
            detail = f"{bn_layers} BatchNorm layer(s)"
            if bn_momentum is not None:
                detail += f", momentum {bn_momentum:g} (an average over ~{1 / max(1 - bn_momentum, 1e-9):.0f} steps"
                detail += f", {steps_per_epoch} steps per epoch)" if steps_per_epoch else ")"
                if steps_per_epoch and bn_momentum > auto_momentum(steps_per_epoch) + 1e-9:
                    detail += f"; use train.bn_momentum=auto ({auto_momentum(steps_per_epoch):.2f})"
            msg += f"; {detail}"
        else:
            msg += "; the model has no BatchNorm"
        found.append(msg + "; validation and best-epoch selection are misled while it lasts")

    # Overfitting: a train-val accuracy gap above GAP for GAP_EPOCHS epochs in a row (epochs
    # explained by the rule above are left out).
    if acc is not None and val_acc is not None:
        gap = np.where(lag | stuck, 0.0, acc - val_acc)
        runs, start = [], None
        for i, wide in enumerate(list(gap > GAP) + [False]):
            if wide and start is None:
                start = i
            elif not wide and start is not None:
                if i - start >= GAP_EPOCHS:
                    runs.append((start, i - 1))
                start = None
        if runs:
            s, e = runs[-1]
            peak = s + int(np.argmax(gap[s:e + 1]))
            when = f"since epoch {epoch[s]}" if e == len(f) - 1 else f"in {_epochs(epoch[s:e + 1])}"
            found.append(f"overfitting: train/val {accuracy} gap {gap[e]:.2f} {when} (largest {gap[peak]:.2f} at "
                         f"epoch {epoch[peak]}); regularise (dropout, augmentation, weight decay)")

    # Still improving when training ended: the best epoch is among the last ones and the
    # metric was still rising (falling, for errors) over them: underfit, or too short a run.
    score = col("val_score")
    if score is not None and len(f) >= IMPROVING_EPOCHS + 1 and np.isfinite(score).all():
        objective = Objective(higher_is_better)
        best = objective.best_index(score)
        before = len(f) - 1 - IMPROVING_EPOCHS
        gain = objective.gain(score[-1], score[before])
        if best >= len(f) - 2 and gain > IMPROVING_GAIN * max(abs(score[before]), 1e-12):
            found.append(f"still improving when stopped: val {metric} {score[before]:.4g} at epoch {epoch[before]} -> "
                         f"{score[-1]:.4g} at epoch {epoch[-1]} (the last; best at epoch {epoch[best]}); "
                         "underfit or too short: raise train.epochs or the budget, or the LR")

    # Dead ReLUs at the last probed epoch.
    dead_cols = _columns(p, "dead_relu")
    if dead_cols and len(p):
        last = p[dead_cols].iloc[-1].astype(float)
        many = last[last > DEAD]
        if len(many):
            layers = ", ".join(f"{c.split('/', 1)[1]} {v:.0%}" for c, v in many.items())
            found.append(f"many dead ReLUs at epoch {p_epoch[-1]} (units never active on the probe batch): {layers}; "
                         "lower the LR or check the initialisation")

    # Activation variance collapsing through depth (first epoch: the initialisation's doing).
    var_cols = _columns(p, "act_var")
    if len(var_cols) >= 2 and len(p):
        v = p[var_cols].iloc[0].astype(float)
        if v.iloc[0] > 0 and np.isfinite(v).all():
            low = v.iloc[1:].idxmin()
            dead_col = "dead_relu/" + low.split("/", 1)[1]
            dead_low = float(p[dead_col].iloc[0]) if dead_col in p else 0.0
            if v[low] / v.iloc[0] < COLLAPSE and not dead_low > DEAD:  # dead units: reported above
                found.append(f"activation variance collapses through depth: {v.iloc[0]:.1e} in "
                             f"{var_cols[0].split('/', 1)[1]} -> {v[low]:.1e} in {low.split('/', 1)[1]} at epoch "
                             f"{p_epoch[0]}; check the initialisation (He-normal for ReLU)")
    return found or [NO_PROBLEMS]


# -- learning curve --------------------------------------------------------------------------
