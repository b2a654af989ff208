"""Built-in competition metrics (entry-point group ``comp.metrics``), all from scikit-learn.

Each receives the whole truth and prediction arrays in the layout ``comp.api.Metric``
describes for its task kind.
"""
from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from comp.api import Metric

CLASSIFICATION, MULTILABEL, REGRESSION, SEQUENCE = "classification", "multilabel", "regression", "sequence"


def _exact(truth, pred) -> float:
    truth, pred = np.asarray(truth), np.asarray(pred)
    same = truth == pred
    return float(same.reshape(len(same), -1).all(axis=1).mean())


def _logloss(truth, scores) -> float:
    truth, scores = np.asarray(truth), np.clip(np.asarray(scores, dtype=np.float64), 1e-15, 1 - 1e-15)
    if truth.ndim == 2:  # multilabel: mean binary log loss over labels
        return float(-(truth * np.log(scores) + (1 - truth) * np.log(1 - scores)).mean())
    return float(skm.log_loss(truth, scores / scores.sum(1, keepdims=True), labels=np.arange(scores.shape[1])))


def _roc_auc(truth, scores) -> float:
    truth, scores = np.asarray(truth), np.asarray(scores, dtype=np.float64)
    if truth.ndim == 2:  # multilabel: mean over labels that have both values
        usable = [j for j in range(truth.shape[1]) if 0 < truth[:, j].sum() < len(truth)]
        return float(np.mean([skm.roc_auc_score(truth[:, j], scores[:, j]) for j in usable])) if usable else 0.5
    if scores.shape[1] == 2:
        return float(skm.roc_auc_score(truth, scores[:, 1]))
    return float(skm.roc_auc_score(truth, scores / scores.sum(1, keepdims=True), multi_class="ovr",
                                   labels=np.arange(scores.shape[1])))


def _indicator_f1(truth: np.ndarray, pred: np.ndarray, how: str) -> float:
    """scikit-learn's multilabel F1 (zero_division=0) from the 0/1 counts.

    Written by hand because the multilabel threshold search scores a few hundred candidate
    matrices per fit, and scikit-learn's input validation costs ~5 ms a call (a 1,437-row,
    4-label ensemble stage spent 97 of its 137 s there); the counts take microseconds.
    """
    truth, pred = truth.astype(bool), pred.astype(bool)
    axis = None if how == "micro" else 0 if how == "macro" else 1
    tp = np.logical_and(truth, pred).sum(axis=axis)
    wrong = np.logical_xor(truth, pred).sum(axis=axis)  # false positives + false negatives
    denominator = 2 * tp + wrong
    f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
    return float(np.mean(f1))


def _f1(average: str):
    def fn(truth, pred) -> float:
        truth, pred = np.asarray(truth), np.asarray(pred)
        if truth.ndim == 2 and truth.shape[1] == 1:  # one label: scikit-learn would read it as two classes
            return _indicator_f1(truth, pred, "micro")
        if average == "auto":  # binary F1 of the positive class; macro for more classes; micro for multilabel
            how = "micro" if truth.ndim == 2 else "binary" if max(truth.max(), pred.max()) <= 1 else "macro"
        else:
            how = average
        if truth.ndim == 2:
            return _indicator_f1(truth, pred, how)
        return float(skm.f1_score(truth, pred, average=how, zero_division=0))
    return fn


def _rmsle(truth, pred) -> float:
    return float(np.sqrt(np.mean((np.log1p(np.clip(pred, 0, None)) - np.log1p(np.clip(truth, 0, None))) ** 2)))


def _position_accuracy(truth, pred) -> float:
    """Share of character positions right, both strings padded to the longer one."""
    right = total = 0
    for t, p in zip(truth, pred):
        width = max(len(t), len(p))
        right += sum(a == b for a, b in zip(t.ljust(width, "\0"), p.ljust(width, "\0")))
        total += width
    return right / max(total, 1)


accuracy = Metric(_exact, True, (CLASSIFICATION, SEQUENCE, MULTILABEL),
                  description="share of rows predicted exactly (multilabel: every label right)")
exact_match = Metric(_exact, True, (SEQUENCE, MULTILABEL), description="share of rows predicted exactly")
position_accuracy = Metric(_position_accuracy, True, (SEQUENCE,), description="share of character positions right")
logloss = Metric(_logloss, False, (CLASSIFICATION, MULTILABEL), needs="scores",
                 description="cross-entropy of the predicted probabilities")
roc_auc = Metric(_roc_auc, True, (CLASSIFICATION, MULTILABEL), needs="scores",
                 description="ROC AUC (binary; one-vs-rest macro for several classes; mean over labels)")
f1 = Metric(_f1("auto"), True, (CLASSIFICATION, MULTILABEL),
            description="F1 of the positive class (binary), macro F1 (several classes), micro F1 (multilabel)")
f1_macro = Metric(_f1("macro"), True, (CLASSIFICATION, MULTILABEL), description="unweighted mean of per-class F1")
f1_micro = Metric(_f1("micro"), True, (CLASSIFICATION, MULTILABEL), description="F1 over all decisions pooled")
f1_samples = Metric(_f1("samples"), True, (MULTILABEL,), description="mean F1 of each row's label set")
qwk = Metric(lambda t, p: float(skm.cohen_kappa_score(t, p, weights="quadratic")), True, (CLASSIFICATION,),
             description="quadratic weighted kappa: agreement beyond chance, a miss weighted by the square of its "
                         "distance in the classes' order (whole-number labels in numeric order)")
rmse = Metric(lambda t, p: float(np.sqrt(skm.mean_squared_error(t, p))), False, (REGRESSION,),
              description="root mean squared error")
mae = Metric(lambda t, p: float(skm.mean_absolute_error(t, p)), False, (REGRESSION,), description="mean absolute error")
r2 = Metric(lambda t, p: float(skm.r2_score(t, p)), True, (REGRESSION,), description="coefficient of determination")
rmsle = Metric(_rmsle, False, (REGRESSION,),
               description="root mean squared error of log(1 + x); targets must be >= 0")
