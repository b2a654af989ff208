"""Quadratic weighted kappa, the metric of many ordinal-label competitions, as a third party would add it."""
from sklearn.metrics import cohen_kappa_score

from comp.api import Metric

qwk = Metric(
    fn=lambda truth, labels: float(cohen_kappa_score(truth, labels, weights="quadratic")),
    higher_is_better=True,
    kinds=("classification",),
    needs="labels",
    description="quadratic weighted kappa of the predicted class indices",
)
