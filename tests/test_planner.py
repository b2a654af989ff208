"""The run plan (comp.planner): the main model funded first, the resolution lowered only when
its schedule does not fit, searches started only when one useful unit fits."""
from __future__ import annotations

import json

import pytest

from comp import clock
from comp.budget import Budget, Share
from comp.planner import ENOUGH_EPOCHS, MAIN_MARGIN, Speed, Workload, candidate_sizes, epoch_seconds, plan_run
from comp.training.trainer import tracing

from tests.test_pipeline import SMOKE

SPEED = Speed(row_seconds=0.001, setup_seconds=2.0, shape=(256, 256, 1))  # 3.2 s an epoch of 3,200 rows
SIZES = candidate_sizes((256, 256), 32 * 32)


def _work(**kw) -> Workload:
    return Workload(**{"folds": 5, "train_rows": 3200, "val_rows": 800, "max_epochs": 40, "sizes": SIZES, **kw})


def test_candidate_sizes_keep_the_aspect_and_stop_at_the_pixel_floor():
    assert SIZES[0] == (256, 256) and SIZES[1] == (192, 192) and SIZES[2] == (128, 128)
    assert SIZES[-1][0] * SIZES[-1][1] >= 32 * 32 > (SIZES[-1][0] * 2 // 3) ** 2
    assert candidate_sizes((32, 128), 1024) == ((32, 128), (24, 96), (16, 64))
    assert candidate_sizes((28, 28), 1024) == ((28, 28),)  # already below the floor: as it is


def test_the_full_size_stands_when_the_main_schedule_fits():
    work = _work()
    plan = plan_run(3000.0, SPEED, work, {"regularize": lambda fold, epochs: 2 * fold})
    assert plan.size == (256, 256) and plan.why == "the data's own size"
    assert plan.epochs == 40 and plan.main_seconds < 3000  # the whole schedule, and time left over
    # funded with a margin over the forecast: at exactly the forecast, digits' last folds got 26 of 40 epochs
    full = 5 * (SPEED.setup_seconds + 2 + 40 * epoch_seconds(SPEED, work, (256, 256)))
    assert plan.main_seconds == pytest.approx(MAIN_MARGIN * full, abs=0.1)
    search = plan.searches["regularize"]
    assert search["funded"] and search["seconds"] == pytest.approx(3000 - plan.main_seconds, abs=0.2)


def test_a_short_budget_lowers_the_resolution_until_enough_epochs_fit():
    work = _work()
    full_epoch = epoch_seconds(SPEED, work, (256, 256))
    training = 5 * (4 + ENOUGH_EPOCHS * full_epoch) / 3  # a third of what 12 full-size epochs need
    plan = plan_run(training, SPEED, work, {"tune": lambda fold, epochs: fold})
    assert plan.size != (256, 256) and plan.size in SIZES
    assert plan.epochs >= ENOUGH_EPOCHS  # what the lower resolution buys
    bigger = SIZES[SIZES.index(plan.size) - 1]  # the next size up would not have fit 12 epochs
    assert 5 * (SPEED.setup_seconds + 2 + ENOUGH_EPOCHS * epoch_seconds(SPEED, work, bigger)) > training
    assert plan.main_seconds == pytest.approx(training, abs=0.1)  # the main model takes all of it
    assert not plan.searches["tune"]["funded"]
    assert any("not expected to start" in line for line in plan.lines("baseline"))


def test_time_no_search_can_use_stretches_the_main_schedule():
    """Street demo, budget=5m: the 40-epoch schedule left 20% of the budget to searches that
    could not start, and the run ended early with its folds still improving."""
    work = _work(stretch_epochs=80)
    full = 5 * (SPEED.setup_seconds + 2 + 40 * epoch_seconds(SPEED, work, (256, 256)))
    plan = plan_run(full * 1.3, SPEED, work, {"regularize": lambda fold, epochs: 2 * fold})
    assert plan.stretched and plan.max_epochs == 80 and plan.size == (256, 256)
    assert 40 < plan.epochs < 80 and plan.main_seconds == pytest.approx(full * 1.3, abs=0.1)
    assert plan.searches["regularize"] == {"seconds": 0.0, "min_seconds": pytest.approx(2 * full / 5 * 1.0, rel=0.1),
                                           "funded": False}
    assert "baseline may run up to 80 epochs a fold" in " ".join(plan.lines("baseline"))
    # a search that one useful unit of fits keeps the time: the schedule stays train.epochs
    funded = plan_run(full * 1.3, SPEED, work, {"regularize": lambda fold, epochs: 0.1 * fold})
    assert not funded.stretched and funded.max_epochs == 40 and funded.searches["regularize"]["funded"]
    # a turned-off search (regularize.changes=[]: its least time is None) is no reason to stop short
    off = plan_run(full * 1.3, SPEED, work, {"regularize": lambda fold, epochs: None})
    assert off.stretched and off.searches == {}
    assert "no search follows it in this command" in " ".join(off.lines("baseline"))
    # without stretch_epochs (baseline.stretch=1) and when the schedule does not even fit: never
    assert not plan_run(full * 1.3, SPEED, _work(), {"regularize": lambda f, e: 2 * f}).stretched
    assert not plan_run(full * 0.5, SPEED, work, {"regularize": lambda f, e: 2 * f}).stretched


def test_the_smallest_size_when_nothing_fits_and_no_negative_times():
    plan = plan_run(-5.0, SPEED, _work(), {"tune": lambda fold, epochs: fold})
    assert plan.size == SIZES[-1] and plan.why.startswith("the smallest size tried")
    assert plan.epochs == 1 and plan.main_seconds == 0 and plan.training_seconds == 0
    assert all(" -" not in line for line in plan.lines("baseline"))


def test_time_after_training_is_kept_only_for_what_fits_the_cap():
    """mnist5k at budget=5m kept 34 s for an ensemble that could only use the 13 s of its fold
    models' views: the plan keeps the largest of a stage's costs that fits, the rest trains."""
    work = _work(sizes=((256, 256),))  # 40 epochs a fold do not fit: the main model takes what is not kept
    small = plan_run(300.0, SPEED, work, after={"ensemble": lambda fold, epochs: [10.0, 60.0]})
    assert small.kept == {"ensemble": 10.0}  # 60 s is past 15% of 300 s: only the views are kept
    large = plan_run(1000.0, SPEED, work, after={"ensemble": lambda fold, epochs: [10.0, 60.0]})
    assert large.kept == {"ensemble": 60.0}  # every candidate kind fits 15% of 1000 s
    assert small.main_seconds > plan_run(300.0, SPEED, work, after={"ensemble": lambda f, e: 60.0}).main_seconds
    assert plan_run(300.0, SPEED, work, after={"ensemble": lambda f, e: 60.0}).kept == {"ensemble": 45.0}  # capped


def test_the_end_keeps_what_prediction_needs_and_the_rest_trains(monkeypatch):
    """digits at budget=5m kept 10% (30 s) for a prediction of 6 s and ended 12% early: the
    plan keeps its forecast of prediction, within 15 s and 10% of the budget."""
    now = [0.0]
    monkeypatch.setattr(clock, "now", lambda: now[0])
    budget = Budget(900.0, start=0.0)
    assert budget.reserve_bounds() == (15.0, 90.0) and budget.training_end() == 810.0
    work = _work(sizes=((256, 256),), test_rows=1000)
    passes = []
    predict = lambda seconds: passes.append(seconds) or 40.0
    plan = plan_run(budget.training_end(), SPEED, work, predict=predict, reserve=budget.reserve_bounds())
    assert passes == [pytest.approx(SPEED.row_seconds * 1000 / 3)]  # one forward pass over the test rows
    assert plan.reserved == 40.0 and plan.training_seconds == 860.0  # the 50 s the forecast does not need train
    assert plan.main_seconds == 860.0 and "40s kept at the budget's end for prediction" in " ".join(plan.lines("b"))
    budget.reserve(plan.reserved)
    assert budget.training_end() == 860.0
    # the bounds hold either way; a command without prediction keeps the least
    assert plan_run(810.0, SPEED, work, predict=lambda s: 500.0, reserve=(15.0, 90.0)).reserved == 90.0
    alone = plan_run(810.0, SPEED, work, reserve=(15.0, 90.0))
    assert alone.reserved == 15.0 and "(no prediction in this command)" in " ".join(alone.lines("b"))
    # the ensemble (after training) ends at the training's end: prediction's forecast is its own
    now[0] = 850.0
    assert budget.box("ensemble", Share(of_remaining=0.5, after_training=True)).end == 860.0
    budget.reserve_more(5.0)  # stage bag added a model prediction must also pass over
    assert budget.training_end() == 855.0
    budget.reserve(1.0)
    assert budget.training_end() == 885.0
    # checks that ran 20 s over: the reserve's difference (75 s) is not all there to train
    assert plan_run(-20.0, SPEED, work, predict=lambda s: 15.0, reserve=(15.0, 90.0)).training_seconds == 55.0


def test_inputs_without_a_size_are_planned_as_they_are():
    plan = plan_run(1000.0, Speed(0.0001, 1.0, (30,)), _work(sizes=()))
    assert plan.size is None and plan.epochs == 40


def test_a_funded_stage_keeps_its_seconds_and_the_others_share_the_rest(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(clock, "now", lambda: now[0])
    budget = Budget(200.0, start=0.0)  # training ends at 180 s (10% kept)
    shares = {"baseline": Share(training=0.4), "regularize": Share(training=0.25), "tune": Share(training=0.35)}
    budget.plan(shares)
    budget.fund("baseline", 120.0)
    box = budget.box("baseline", shares["baseline"])
    assert box.seconds == 120.0
    now[0] = 100.0  # the baseline ended 20 s early: what it left goes on
    budget.finished("baseline")
    assert budget.box("regularize", shares["regularize"]).seconds == pytest.approx(80 * 0.25 / 0.6)
    budget.fund("ensemble-like", 500.0)
    assert budget.box("ensemble-like", Share(training=1.0)).seconds == pytest.approx(80.0)  # never past training's end


def test_a_leftover_stage_gets_what_the_weighted_stages_leave(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(clock, "now", lambda: now[0])
    budget = Budget(200.0, start=0.0)  # training ends at 180 s
    shares = {"baseline": Share(training=0.4), "tune": Share(training=0.6), "bag": Share(leftover=True)}
    assert budget.plan(shares).endswith("baseline 40% (~72s), tune 60% (~108s); bag what they leave (a stage that "
                                        "finishes early or is unchanged leaves its time to the next)")
    assert budget.box("baseline", shares["baseline"]).seconds == pytest.approx(72.0)  # no weight taken by bag
    assert budget.planned("bag")
    now[0] = 60.0
    budget.finished("baseline")
    budget.keep(20.0)  # the run plan's time for the ensemble
    now[0] = 120.0  # tune ended early
    budget.finished("tune")
    assert budget.box("bag", shares["bag"]).seconds == pytest.approx(40.0)  # to training's end less what is kept


def test_tracing_is_the_time_beyond_the_typical_step():
    assert tracing([3.0, 0.1, 0.1, 0.1, 0.5]) == pytest.approx(3.8 - 5 * 0.1)  # beyond 5 median steps
    assert tracing([3.0, 0.1]) == 0.0  # too few steps to tell


@pytest.mark.slow  # ~65 s: `pytest -m slow` (CI's 20 minutes)
def test_the_first_epoch_plans_by_its_untraced_time(comp, workdir):
    """A fold's first epoch traces the step (seconds on a small set); planned from that time the
    fold got one epoch (digits at budget=2m: folds of 1 epoch, OOF 0.64)."""
    code, out, err = comp("run", "stage=baseline", *SMOKE, "train.lr=3e-3", "budget=60s", "train.epochs=200")
    assert code == 0, err
    record = json.loads((workdir / "runs/digits/baseline/stage.json").read_text())
    assert all(plan["epochs"] > 3 for plan in record["plan"])  # tens of epochs fit; a traced first epoch said 1


def test_a_budgeted_run_prints_stores_and_follows_its_plan(comp, workdir):
    code, out, err = comp("run", "stage=baseline", *SMOKE, "train.lr=auto", "budget=60s")
    assert code == 0, err
    plan = json.loads((workdir / "runs/digits/plan.json").read_text())
    assert plan["stage"] == "baseline" and plan["size"] == [8, 8] and plan["budget_s"] == 60
    assert f"run plan: {plan['training_seconds']:.0f}s of training; baseline first at 8x8" in out
    record = json.loads((workdir / "runs/digits/baseline/stage.json").read_text())
    assert record["run_plan"]["main_seconds"] == plan["main_seconds"]
    assert record["budget"]["given_s"] == pytest.approx(min(plan["main_seconds"], plan["training_seconds"]), abs=2)
    # A second command finds the baseline unchanged: the stored plan keeps its key
    code, out, err = comp("run", "stage=baseline", *SMOKE, "train.lr=auto", "budget=60s")
    assert code == 0 and "[baseline] unchanged" in out


def test_a_stretched_plan_trains_the_main_model_longer_and_keeps_its_key(comp, workdir):
    code, out, err = comp("run", "stage=baseline", *SMOKE, "baseline.stretch=3", "budget=60s")
    assert code == 0, err
    plan = json.loads((workdir / "runs/digits/plan.json").read_text())
    assert plan["stretched"] and plan["max_epochs"] == 9  # train.epochs=3, nothing after the baseline
    assert ("run plan: baseline may run up to 9 epochs a fold (train.epochs stretched): no search follows it in "
            "this command") in out
    record = json.loads((workdir / "runs/digits/baseline/stage.json").read_text())
    assert all(fold["max_epochs"] == 9 and fold["epochs"] > 3 for fold in record["plan"])  # 8x8 epochs are cheap
    assert "epochs: 9" in (workdir / "runs/digits/baseline/config.yaml").read_text()
    code, out, err = comp("run", "stage=baseline", *SMOKE, "baseline.stretch=3", "budget=60s")
    assert code == 0 and "[baseline] unchanged" in out
    # train.epochs given since: the user's schedule, not the stored plan's stretch of the old one
    code, out, err = comp("run", "stage=baseline", *SMOKE, "baseline.stretch=3", "train.epochs=2")
    assert code == 0, err
    assert "[baseline] unchanged" not in out and "epochs: 2" in (workdir / "runs/digits/baseline/config.yaml").read_text()


def _upscaled(demo, root, side: int):
    """The digits demo with every image resized to side x side (an expensive epoch at its own size)."""
    import cv2

    from tests.conftest import copy_competition

    root = copy_competition(demo, root)
    for png in [*(root / "train").glob("*.png"), *(root / "test").glob("*.png")]:
        image = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(png), cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC))
    return root


@pytest.mark.slow  # ~48 s: `pytest -m slow` (CI's 20 minutes)
def test_large_images_are_checked_small_and_trained_at_the_planned_size(comp, workdir, demo):
    """Checks on 300x300 images took twice their share before timing anything, so training ran
    at the full size 5x past its budget. The checks time the model at the smallest size the
    plan weighs; the plan weighs every size from the data's own down."""
    root = _upscaled(demo, workdir / "big", 96)
    # an explicit LR: under a budget the check runs all the same, for the plan's speed
    code, out, err = comp("run", "stage=baseline", f"competition={root}", *SMOKE, "train.lr=3e-3", "budget=45s")
    assert code == 0, err
    assert "[check] checks at 36x36, the data's 96x96 scaled down" in out
    speed = json.loads((workdir / "runs/big/check/stage.json").read_text())["speed"]
    assert speed["input_shape"] == [36, 36, 1] and speed["data_shape"] == [96, 96, 1]
    plan = json.loads((workdir / "runs/big/plan.json").read_text())
    assert plan["data_size"] == [96, 96] and tuple(plan["size"]) in candidate_sizes((96, 96), 32 * 32)
    record = json.loads((workdir / "runs/big/baseline/stage.json").read_text())
    assert record["input_shape"][:2] == plan["size"]  # trained at the planned size



def test_the_plan_counts_the_whole_epochs_a_fold_fits():
    """What decides whether fine-tuning can train at all: whole epochs in a fold's time."""
    assert plan_run(3600.0, SPEED, _work()).whole_epochs > ENOUGH_EPOCHS
    assert plan_run(10.0, SPEED, _work(sizes=((256, 256),))).whole_epochs == 0  # under a fold's fixed costs: no 3.2-s epoch fits


def test_beside_an_estimator_the_plan_funds_the_network_after_the_estimators_share():
    """A table: gradient boosting is the main model, the MLP beside it is what the time buys.
    The estimators get BESIDE_SHARE of the training time, the network's schedule is funded from
    the rest (its epochs forecast on that rest), and nothing is stretched for the searches."""
    from comp.planner import BESIDE_SHARE, fold_seconds

    work = _work(sizes=(), stretch_epochs=80)
    speed = Speed(row_seconds=5e-5, setup_seconds=1.5)  # the MLP on 3,200 rows: ~0.2 s an epoch
    full = 5 * fold_seconds(speed, work, None, 40)
    roomy = plan_run(1000.0, speed, work, beside=("hgb", "mlp"))
    assert roomy.network == "mlp" and roomy.beside == "hgb" and roomy.epochs == 40
    assert roomy.beside_seconds == pytest.approx(BESIDE_SHARE * 1000, abs=0.1)
    assert roomy.main_seconds == pytest.approx(BESIDE_SHARE * 1000 + MAIN_MARGIN * full, abs=0.2)
    assert not roomy.stretched  # no search is planned beside an estimator, and none stretches it
    line = roomy.lines("baseline")[0]
    assert line.startswith("run plan: 1000s of training; baseline first") and "then mlp ~40 epochs a fold" in line
    tight = plan_run(60.0, speed, work, beside=("hgb", "mlp"))
    assert tight.main_seconds == pytest.approx(60.0)  # all of it: the network's schedule is cut to fit
    per_fold = (1 - BESIDE_SHARE) * 60 / 5 - 1.5 - 2
    assert tight.epochs == int(per_fold // epoch_seconds(speed, work, None)) < 40


def test_beside_an_estimator_a_network_too_short_for_enough_epochs_is_left_out():
    """Where the time after the estimators' share buys the portfolio's network fewer than
    ENOUGH_EPOCHS a fold, the plan leaves it out and funds the estimators with all of the
    training time (their searches take what they leave). A network the user named is funded
    whatever it gets."""
    work = _work(sizes=())
    speed = Speed(row_seconds=5e-5, setup_seconds=1.5)  # ~0.26 s an epoch: 3 fit a fold in 30 s
    short = plan_run(30.0, speed, work, beside=("hgb", "mlp"))
    assert short.left_out == "mlp" and short.network == "" and short.main_seconds == 30.0
    assert short.epochs == 3 < ENOUGH_EPOCHS and not short.searches
    assert short.lines("baseline")[0] == ("run plan: 30s of training; mlp left out: ~3 epochs a fold at ~0.26s fit "
                                          "beside hgb and the other estimators, under the 12 it needs; baseline "
                                          "first, up to 30s: hgb and the other estimators")
    named = plan_run(30.0, speed, work, beside=("hgb", "mlp"), optional=False)
    assert named.network == "mlp" and named.left_out == "" and named.main_seconds == pytest.approx(30.0)
    assert plan_run(60.0, speed, work, beside=("hgb", "mlp")).network == "mlp"  # 20 epochs a fold fit
    # A shorter schedule than ENOUGH_EPOCHS that fits whole is enough: 9 epochs a fold fit 8.
    assert plan_run(40.0, speed, _work(sizes=(), max_epochs=8), beside=("hgb", "mlp")).network == "mlp"
    # The reserve was forecast from the network's passes: left out, it predicts nothing, so the
    # most is kept (the estimators' prediction is not forecast) and the plan says so.
    network_pass = plan_run(30.0, speed, work, beside=("hgb", "mlp"), predict=lambda s: 4.0, reserve=(2.0, 12.0),
                            optional=False)  # funded, the network predicts: its forecast is kept
    assert network_pass.network == "mlp" and network_pass.reserved == network_pass.reserve_forecast == 4.0
    kept = plan_run(30.0, speed, work, beside=("hgb", "mlp"), predict=lambda s: 4.0, reserve=(2.0, 12.0))
    assert kept.left_out == "mlp" and kept.reserved == 12.0 and kept.reserve_forecast == 0.0
    assert kept.training_seconds == kept.main_seconds == 30.0  # none of the most moved to training
    assert ("run plan: 12s kept at the budget's end for prediction, the submission and the report (the "
            "estimators' prediction, not forecast: the most kept)") in kept.lines("baseline")


def test_a_network_the_plan_left_out_leaves_the_portfolio_from_the_main_stage_on():
    """planned_config: the stored plan's portfolio without the network, where the portfolio is
    the default (``auto``); a list the user gives wins."""
    from comp.config import load_config
    from comp.run_plan import planned_config

    plan = {"left_out": "mlp", "variants": ["hgb_long", "extra_trees", "linear"]}
    assert planned_config(load_config([]), plan).baseline.variants == ["hgb_long", "extra_trees", "linear"]
    named = load_config(["baseline.variants=[linear,mlp]"])
    assert planned_config(named, plan).baseline.variants == ["linear", "mlp"]
