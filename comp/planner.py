"""The run plan: what a budget buys, decided once before the main model trains.

After the checks the run knows what one training row costs (stage check's timed steps), how
many rows each fold trains on, and how long training may last. From those this module
decides, with plain inputs (no stage, run directory or config):

- the input resolution: the largest of the modality's candidate sizes at which the main
  model gets ``ENOUGH_EPOCHS`` per fold (the full size when it does there, the smallest
  candidate when none does);
- the main model's time: its whole schedule (``train.epochs`` per fold) when that fits,
  else all of the training time. It is funded first: Budgeted Training (Li, Yumer, Ramanan,
  ICLR 2020) found a schedule decayed to its end in the time given beats a longer one cut,
  and a search that starts from an under-trained model measures noise;
- what is left for the searches, each of which is expected to start only when one useful
  unit of it (``min_seconds``, the stage's own estimate) fits;
- when none would start, the main model's schedule may stretch to ``stretch`` times its
  length (``Workload.stretch_epochs``): time no search can use trains the main model longer
  rather than ending the run early (measured: on the street demo at ``budget=5m`` the 40-epoch
  schedule left 20% of the budget to two searches that could not start, its folds "still
  improving when stopped"). Not beside an estimator (below): the searches there search the
  estimator, whose cost the plan does not forecast.

On a table whose main model is an estimator, the model the plan is about is the Keras network
beside it in the portfolio (``network``): the estimators cost seconds a fold, so they are given
``BESIDE_SHARE`` of the time (``beside_seconds``, in the main stage, before the network) and the
network's schedule is funded from the rest like a main model's. Where the rest does not buy the
network ``ENOUGH_EPOCHS`` a fold, it is left out (``left_out``): an under-trained network gets
no weight in the blend and costs the others their time (measured at budget=2m on hpc: the MLP
took the training time and the held-back accuracy fell 0.013). The estimators are then funded
with all of the training time, and their searches take what they leave (measured on diamonds
at budget=2m: given the main stage's weight instead, 28 s, the estimators were all stopped
short, the second gradient boosting at 300 of its 3,000 iterations, extra trees at 30 trees).

The plan is a forecast: each stage's box is still made when it starts, from the time really
left (``comp.budget``), so what a stage does not use goes to the next.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

# A fold's epochs below which the main model is under-trained: the size of schedule the
# hand-written recipes that beat comp used (12 epochs a fold on 8,000 28x28 images, 20 on
# 6,000 street numbers). The resolution is lowered until this many fit.
ENOUGH_EPOCHS = 12
# A steady epoch's seconds: EPOCH_FACTOR x (training rows + a third of the validation rows) x
# stage check's seconds per training row (a typical step of its LR sweep), plus EPOCH_SECONDS
# that do not grow with the rows (callbacks, the diagnostics' probe, setting up validation).
# Fitted on four datasets (benchmarks/forecast.py, budget=2m: mnist5k at 28x28, 5,000 digits at
# 32x32, the street and digits demos): forecast within -10%..+11% of the measured epochs.
EPOCH_FACTOR = 1.0
EPOCH_SECONDS = 0.09
# The main model is funded with this much more than its forecast full schedule: a forecast a
# little low (a fold's own costs, a busy machine) would otherwise end its last folds' schedules
# short, while time funded and not used goes on to the next stages. Measured: digits at
# budget=2m funded at exactly the forecast trained its folds 36, 28, 27, 27, 26 epochs of 40.
MAIN_MARGIN = 1.2
EVAL_ROW_COST = 1 / 3  # a validation row (forward pass only) against a training row
FIXED_COST = 0.15  # of a row's cost at full size that does not shrink with the pixels (the head, steps)
AFTER_SHARE = 0.15  # of the training time, at most, kept for the stages after training (the ensemble)
FOLD_SECONDS = 2.0  # a fold's own fixed cost beyond building and tracing: scoring, saving the models
# Of a table's training time, what the estimators beside its network get (they train first, in
# the same stage; what they leave goes to the network). Measured at budget=5m on diamonds (24,000
# training rows, the largest table benchmarked): gradient boosting twice, extra trees and the
# linear model took 60 s of the 245 when extra trees grew all of its 300 trees.
BESIDE_SHARE = 0.25


@dataclass(frozen=True)
class Speed:
    """Stage check's measurement: seconds per training row at ``shape``, and a model's set-up."""

    row_seconds: float
    setup_seconds: float
    shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Workload:
    """What the main model trains: ``folds`` folds of ``train_rows`` (``val_rows`` scored)."""

    folds: int
    train_rows: int
    val_rows: int
    max_epochs: int  # train.epochs: the schedule's length without a budget
    sizes: tuple[tuple[int, int], ...] = ()  # candidate input sizes, largest (the data's own) first
    stretch_epochs: int = 0  # the longest schedule when no search can use the time left (0: max_epochs)
    test_rows: int = 0  # rows the test set's prediction passes over


@dataclass
class RunPlan:
    training_seconds: float  # from the plan to the training's end
    size: tuple[int, int] | None  # the planned input size (None: inputs that have none)
    epochs: int  # per fold, forecast for the main model
    epoch_seconds: float  # forecast at ``size``
    main_seconds: float  # the main model's time
    max_epochs: int = 0  # the main model's schedule may run up to this many epochs a fold
    train_epochs: int = 0  # train.epochs: max_epochs beyond it means the plan stretched the schedule
    searches: dict[str, dict] = field(default_factory=dict)  # stage -> {"seconds", "min_seconds", "funded"}
    kept: dict[str, float] = field(default_factory=dict)  # after the training stages: stage -> seconds
    reserved: float = 0.0  # kept at the budget's end for prediction, the submission and the report
    reserve_forecast: float = 0.0  # what the plan forecast they need (0: no prediction in this command)
    why: str = ""  # why this size
    whole_epochs: int = -1  # whole epochs of the main model that fit a fold's time (-1: not planned)
    network: str = ""  # the portfolio's network the plan is about, when the main model is an estimator
    beside: str = ""  # that estimator
    beside_seconds: float = 0.0  # of main_seconds, the estimators' (trained first)
    left_out: str = ""  # the network beside an estimator that ENOUGH_EPOCHS a fold did not fit (not trained)
    reserve_note: str = ""  # what the reserve is, where it is not reserve_forecast

    @property
    def enough_epochs(self) -> int:
        """Epochs a fold the main model needs: ENOUGH_EPOCHS, or its whole schedule if shorter."""
        return min(ENOUGH_EPOCHS, self.train_epochs)

    @property
    def stretched(self) -> bool:
        """No search could use the time left: the main model may run beyond train.epochs."""
        return self.max_epochs > self.train_epochs

    def to_dict(self) -> dict:
        data = asdict(self)
        data["stretched"] = self.stretched  # for plan.json's readers
        data["size"] = list(self.size) if self.size else None
        return data

    def lines(self, stage: str) -> list[str]:
        """What the plan says, to print before training."""
        res = f" at {self.size[0]}x{self.size[1]} ({self.why})" if self.size else ""
        if self.left_out:
            out = [f"run plan: {self.training_seconds:.0f}s of training; {self.left_out} left out: ~{self.whole_epochs} "
                   f"epochs a fold at ~{self.epoch_seconds:.2f}s fit beside {self.beside} and the other estimators, "
                   f"under the {self.enough_epochs} it needs; {stage} first, up to {self.main_seconds:.0f}s: "
                   f"{self.beside} and the other estimators"]
        elif self.network:
            out = [f"run plan: {self.training_seconds:.0f}s of training; {stage} first, {self.main_seconds:.0f}s: "
                   f"{self.beside} and the other estimators ~{self.beside_seconds:.0f}s, then {self.network} "
                   f"~{self.epochs} epochs a fold at ~{self.epoch_seconds:.2f}s"]
        else:
            out = [f"run plan: {self.training_seconds:.0f}s of training; {stage} first{res}: ~{self.epochs} epochs a "
                   f"fold at ~{self.epoch_seconds:.2f}s, {self.main_seconds:.0f}s"]
        if self.stretched:
            why = ("no search would start in the time its schedule leaves" if self.searches
                   else "no search follows it in this command")
            out.append(f"run plan: {stage} may run up to {self.max_epochs} epochs a fold (train.epochs stretched): "
                       + why)
        for name, seconds in self.kept.items():
            out.append(f"run plan: {name} ~{seconds:.0f}s, kept before the main model's time")
        if self.reserved:
            need = self.reserve_note or (f"prediction forecast ~{self.reserve_forecast:.0f}s" if self.reserve_forecast
                                         else "no prediction in this command")
            out.append(f"run plan: {self.reserved:.0f}s kept at the budget's end for prediction, the submission and "
                       f"the report ({need})")
        for name, s in self.searches.items():
            out.append(f"run plan: {name} ~{s['seconds']:.0f}s" + (
                "" if s["funded"] else f", not expected to start (one useful unit needs ~{s['min_seconds']:.0f}s)"))
        return out


def epoch_seconds(speed: Speed, work: Workload, size: tuple[int, int] | None) -> float:
    """Forecast seconds of one steady epoch at ``size``."""
    row = speed.row_seconds * pixel_cost(speed.shape, size)
    return EPOCH_FACTOR * row * (work.train_rows + EVAL_ROW_COST * work.val_rows) + EPOCH_SECONDS


def pixel_cost(measured: tuple[int, ...] | None, size: tuple[int, int] | None) -> float:
    """A row's cost at ``size`` against its cost at the ``measured`` shape: convolutions scale
    with the pixels, a part (``FIXED_COST``) does not."""
    if not measured or not size or len(measured) < 2:
        return 1.0
    ratio = (size[0] * size[1]) / max(measured[0] * measured[1], 1)
    return FIXED_COST + (1 - FIXED_COST) * ratio


def fold_seconds(speed: Speed, work: Workload, size, epochs: int) -> float:
    return speed.setup_seconds + FOLD_SECONDS + epochs * epoch_seconds(speed, work, size)


def test_pass_seconds(speed: Speed, work: Workload, size: tuple[int, int] | None) -> float:
    """Forecast seconds of one forward pass over the test rows at ``size``."""
    return speed.row_seconds * pixel_cost(speed.shape, size) * EVAL_ROW_COST * work.test_rows


def plan_run(training_seconds: float, speed: Speed, work: Workload,
             searches: dict[str, Callable[[float, int], float]] | None = None,
             after: dict[str, Callable[[float, int], float]] | None = None,
             predict: Callable[[float], float] | None = None,
             reserve: tuple[float, float] = (0.0, 0.0), beside: tuple[str, str] | None = None,
             optional: bool = True) -> RunPlan:
    """The plan for ``training_seconds`` of training. ``searches``: stage -> a function of
    (the main model's fold seconds, its epochs) giving the least time that stage can use
    (None: it is turned off and will not start);
    ``after``: the same for the stages after training that the plan keeps time for (the
    ensemble), at most ``AFTER_SHARE`` of the training time, taken before the main model's;
    a list of costs (ascending: more of the stage's work) keeps the largest that fits.
    ``reserve``: (the least, the most) kept at the budget's end for prediction, the submission
    and the report, the most already outside ``training_seconds``; ``predict``: a function of
    one forward pass over the test rows giving what they need (None: no prediction follows).
    The plan keeps that forecast within those bounds and trains in the difference: a fixed
    10% kept digits' demo at budget=5m 30 s for a prediction of 6 s, and the run ended early.
    ``beside``: (the estimator, the network): ``speed`` and ``work`` are the network's, trained
    in the main stage after estimators given ``BESIDE_SHARE`` of the training time, or left
    out (``left_out``, the estimators funded with all of the training time) where the rest
    does not fit ``ENOUGH_EPOCHS`` a fold and it is ``optional`` (the portfolio chose it, the
    user did not name it)."""
    fewest, most = reserve
    # time already overspent (the checks ran over) is not made good by the reserve's difference
    short = max(-training_seconds, 0.0)
    training_seconds = max(training_seconds, 0.0)
    sizes = list(work.sizes) or [None]
    kept = {}
    for name, forecast in (after or {}).items():
        full = fold_seconds(speed, work, sizes[0], work.max_epochs)
        tiers = forecast(full, work.max_epochs)
        tiers = sorted(float(t) for t in (tiers if isinstance(tiers, (list, tuple)) else [tiers]))
        # The most the stage can use within the cap, not the cap: time kept for work that
        # does not fit it is time the main model loses (mnist5k at budget=5m kept 34 s, of
        # which the ensemble could use the 13 its fold models' views took).
        cap = AFTER_SHARE * training_seconds
        kept[name] = round(min(max([t for t in tiers if t <= cap], default=tiers[0]), cap), 1)
    total = training_seconds
    training_seconds = max(total - sum(kept.values()), 0.0)
    share = BESIDE_SHARE if beside else 0.0
    affordable = lambda size: (work.folds * fold_seconds(speed, work, size, ENOUGH_EPOCHS)
                               <= (1 - share) * training_seconds)
    size = next((s for s in sizes if affordable(s)), sizes[-1])
    if size is None:
        why = ""
    elif size == sizes[0]:
        why = "the data's own size"
    elif affordable(size):
        why = f"the largest size at which {ENOUGH_EPOCHS} epochs a fold fit, from {sizes[0][0]}x{sizes[0][1]}"
    else:
        why = f"the smallest size tried: {ENOUGH_EPOCHS} epochs a fold fit at none, from {sizes[0][0]}x{sizes[0][1]}"
    forecast = predict(test_pass_seconds(speed, work, size)) if predict else 0.0
    reserved = min(max(forecast, fewest), max(most, fewest))
    gained = max(most - reserved - short, 0.0)  # the size stays as planned on less
    training_seconds += gained
    total += gained
    epoch = epoch_seconds(speed, work, size)
    besides = share * training_seconds
    per_fold = (training_seconds - besides) / max(work.folds, 1) - speed.setup_seconds - FOLD_SECONDS
    fit = int(max(per_fold, 0.0) // max(epoch, 1e-9))
    epochs = max(1, min(work.max_epochs, fit))
    main = min(training_seconds,
               besides + MAIN_MARGIN * work.folds * fold_seconds(speed, work, size, work.max_epochs))
    plan = RunPlan(round(total, 1), size, epochs, round(epoch, 3), round(main, 1), work.max_epochs,
                   work.max_epochs, why=why, kept=kept, reserved=round(reserved, 1),
                   reserve_forecast=round(forecast, 1), whole_epochs=fit)
    if beside:
        plan.beside = beside[0]
        if optional and fit < plan.enough_epochs:
            plan.left_out = beside[1]
            if predict:
                # The reserve was forecast from the network's passes, and the network will not
                # predict: the estimators' prediction is not forecast (check timed no estimator),
                # so the most is kept, as without a plan (flights at budget=5m printed a forecast
                # of ~356s for a prediction of 7s).
                plan.reserved, plan.reserve_forecast = round(max(most, fewest), 1), 0.0
                plan.reserve_note = "the estimators' prediction, not forecast: the most kept"
                training_seconds, total = training_seconds - gained, total - gained
                plan.training_seconds = round(total, 1)
            plan.main_seconds = round(training_seconds, 1)
            return plan
        plan.network, plan.beside_seconds = beside[1], round(besides, 1)
    left = training_seconds - main
    for name, least in (searches or {}).items():
        need = least(fold_seconds(speed, work, size, epochs), epochs)
        if need is None:  # the search is turned off (nothing to try): it will not start
            continue
        plan.searches[name] = {"seconds": round(max(left, 0.0), 1), "min_seconds": round(float(need), 1),
                               "funded": left > 0 and left >= need}
    stretchable = work.stretch_epochs > work.max_epochs and not beside  # beside: the searches' cost is not forecast
    if stretchable and left > 0 and not any(s["funded"] for s in plan.searches.values()):
        # The folds still fit their schedule to their time (comp.training.callbacks.BudgetPlan):
        # the longer cap only lets them use what would otherwise be left unspent.
        plan.max_epochs = work.stretch_epochs
        plan.epochs, plan.main_seconds = max(1, min(work.stretch_epochs, fit)), round(training_seconds, 1)
        for search in plan.searches.values():
            search["seconds"] = 0.0
    return plan


def candidate_sizes(size: tuple[int, int], least_pixels: int) -> tuple[tuple[int, int], ...]:
    """``size`` and smaller ones of its aspect (3/4, 1/2, 3/8, 1/4, ... of each side), down to
    ``least_pixels``."""
    h, w = size
    out, scale, steps = [(h, w)], 1.0, (0.75, 2 / 3)
    for i in range(64):
        scale *= steps[i % 2]
        smaller = (max(1, round(h * scale)), max(1, round(w * scale)))
        if smaller[0] * smaller[1] < least_pixels:
            break
        if smaller != out[-1]:
            out.append(smaller)
    return tuple(out)
