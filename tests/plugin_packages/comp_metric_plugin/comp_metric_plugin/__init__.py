"""Matthews correlation coefficient, a competition's own metric, as a third party would add it."""
from sklearn.metrics import matthews_corrcoef

from comp.api import Metric

mcc = Metric(
    fn=lambda truth, labels: float(matthews_corrcoef(truth, labels)),
    higher_is_better=True,
    kinds=("classification",),
    needs="labels",
    description="Matthews correlation coefficient of the predicted class indices",
)
