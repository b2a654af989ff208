"""Stage `check`: pre-flight sanity checks before the first fold (docs/recipe.md 3).

Four PASS/WARN/FAIL lines on fold 0's training rows: initial loss vs the prior entropy,
overfitting one small batch, an LR range test whose suggested LR later stages use with
``train.lr=auto``, and real vs zeroed inputs. A failed check is reported and recorded,
not raised: the run goes on and the user decides. They are for networks: beside an
estimator main model (a table's gradient boosting) they check the Keras model of
``baseline.variants`` (``comp.stages.training.portfolio_network``), whose speed the run plan
then funds; with none there they are skipped.
"""
from __future__ import annotations

import numpy as np

from comp import clock
from comp.budget import Share
from comp.context import StageContext
from comp.errors import ConfigError
from comp.files import write_csv
from comp.modalities import modality_of

NAME = "check"
MIN_ZERO_INPUT_ROWS = 256  # fewer training rows tell real inputs from blank ones too noisily
INITIAL_LOSS_ROWS = 1024  # a sample's mean untrained loss is as good a check as every row's, and cheap
MIN_LR_STEPS = 50  # 10 per decade of the default sweep (1e-5 to 1): fewer miss the loss's minimum
HELP = "sanity checks: initial loss, zero-input baseline, overfit a batch, LR range test"
CONFIG = ("seed", "task", "metric", "data", "model", "train.batch_size", "train.bn_momentum", "train.max_memory",
          "train.lr_scaling", "check")
TRAINS = False
# A pre-flight: the training after it is the point. What does not fit is skipped.
TIME = Share(of_budget=0.1)


def inputs(cfg, available, training=()) -> dict[str, str]:
    return {"split": "split"}


def key_values(cfg, competition, task) -> dict:
    """What the checks depend on beyond ``CONFIG``: beside an estimator, the network they
    check. Keyed on it rather than on baseline.variants and ensemble.candidates, which decide
    it: a change of those alone would otherwise rerun the checks and retrain every stage after."""
    from comp.stages.training import network_key

    return network_key(cfg, competition, task)


def validate(cfg, competition, task) -> None:
    """Problems that would stop the checks from running at all, found before any work."""
    from comp.stages.training import validate_model

    opts = cfg.check
    validate_model(cfg, competition, task)
    if not 0 < opts.lr_min < opts.lr_max:
        raise ConfigError(f"check.lr_min={opts.lr_min:g}, check.lr_max={opts.lr_max:g}: "
                          "need 0 < lr_min < lr_max")
    for key in ("zero_input_epochs", "overfit_examples", "overfit_steps", "lr_steps"):
        if getattr(opts, key) < 1:
            raise ConfigError(f"check.{key}={getattr(opts, key)}: use at least 1")


def run(ctx: StageContext) -> dict:
    import keras  # TensorFlow loads only when a stage needs it: `inspect` alone stays fast

    from comp.stages.training import load_train, model_name, portfolio_network, read_folds
    from comp.training import sanity
    from comp.training.batchnorm import resolve_momentum, steps_per_epoch
    from comp.training.cv import fit_rows
    from comp.training.feeding import select
    from comp.training.model import build_model, is_estimator
    from comp.training.strategy import get_strategy, worker_role

    cfg, task, opts = ctx.cfg, ctx.task, ctx.cfg.check
    name = model_name(cfg, ctx.competition, task)
    beside = None  # the estimator the checked network trains beside
    if is_estimator(name):
        network = portfolio_network(cfg, ctx.competition, task)
        if network is None:
            return _skip_all(ctx, f"model {name} is not a Keras model: the checks are for networks")
        beside, (name, hp) = name, network
        cfg = cfg.merged({"model.name": name, "model.hp": dict(hp)}, where="the network in baseline.variants")
        ctx.log(f"model {beside} is not a Keras model: the checks are for {name}, the network beside it in "
                "baseline.variants (train.lr=auto and the run plan use what they measure)")
    inputs, y = load_train(ctx)
    modality = modality_of(ctx.competition)
    data_shape = modality.input_shape(inputs)
    # Only under a budget: without one nothing is planned, training runs at the data's own size,
    # and the LR suggested here should come from that size.
    probe = None if cfg.data.image_size or not ctx.time.limited else modality.probe_size(data_shape)
    if probe:  # large images: time the model where it is cheap; the run plan scales the speed to each size
        cfg = cfg.merged({"data.image_size": list(probe)}, where="stage check's timing size")
        inputs = modality.read(ctx.competition, "train", cfg.reading())[0]
        ctx.log(f"checks at {probe[0]}x{probe[1]}, the data's {data_shape[0]}x{data_shape[1]} scaled down: the "
                "run plan picks the training size from the speed measured here")
    fold_of = read_folds(ctx)
    train_rows, val_rows = fit_rows(fold_of, 0), np.flatnonzero(fold_of == 0)  # fold 0, as baseline
    spec = inputs.spec(train_rows)
    steps = steps_per_epoch(len(train_rows), cfg.train.batch_size)  # training's, for its BatchNorm momentum
    # The checks' short trainings hold their rows in memory: on a large set, a sample
    # (a pre-flight needs no more; 90k 64x64 colour images would take 1.1 GB, 10k take 0.12 GB).
    rng = np.random.default_rng(cfg.seed)
    train_rows, val_rows = (np.sort(rng.choice(rows, limit, replace=False)) if len(rows) > limit else rows
                            for rows, limit in ((train_rows, opts.max_rows), (val_rows, max(opts.max_rows // 4, 1))))
    x_train, y_train = inputs.take(train_rows), y[train_rows]
    strategy = get_strategy(cfg.train.strategy)  # the checks train as the folds will, on every strategy
    # Workers must all run the same steps, so under several workers the checks are not sized
    # by each one's own clock: they run in full.
    timed = ctx.time.limited and worker_role()[1] == 1

    def build():
        # No augmentation: the checks look at the model and the data, not at regularisers.
        # BatchNorm gets the momentum training uses, so its short trainings are not misled.
        return build_model(spec, task, name, cfg.model.hp, [],
                           bn_momentum=resolve_momentum(cfg.train.bn_momentum, steps))[0]

    ctx.log(f"model {name} on {len(y_train)} training rows of fold 0")
    from comp.training.memory import batch_for_memory, describe_cut

    # (batch, its LR factor): the checks train at the batch training will use at this size
    fitted_batch = batch_for_memory(build(), cfg.train.batch_size, cfg.train.max_memory, cfg.train.lr_scaling,
                                    strategy.num_replicas_in_sync)
    keras.backend.clear_session()
    if fitted_batch[0] < cfg.train.batch_size:
        ctx.log(describe_cut(fitted_batch[0], cfg.train.batch_size, cfg.train.max_memory))

    def initial_loss():
        keras.utils.set_random_seed(cfg.seed)
        # A sample tells the untrained loss as well as every row does, at a fraction of the time.
        pick = np.random.default_rng(cfg.seed).permutation(len(y_train))[:INITIAL_LOSS_ROWS]
        results = sanity.check_initial_loss(build(), select(x_train, np.sort(pick)), y_train[np.sort(pick)], task)
        keras.backend.clear_session()
        return results

    # Under a budget each training check is sized to what is left of the checks' share, at
    # the seconds per training row the check before it measured (a step's time over its rows:
    # on the safe side, steps have fixed costs) after the model's set-up (building, tracing).
    # At 3,000 64x64 images the 200-step LR range test alone took twice the share.
    speed: dict[str, float] = {}

    box = ctx.time  # the checks' share of the budget (TIME): they are a pre-flight, the training after is the point
    left = box.remaining

    def too_little(name: str, what: str):
        return _skipped(name, f"skipped: {max(left(), 0):.0f}s left of the checks' share of budget={cfg.budget} "
                              f"({TIME.of_budget:.0%}) {what}")

    def overfit():
        # one batch: no larger than a step that fits train.max_memory
        pick = np.random.default_rng(cfg.seed).permutation(len(y_train))[:min(opts.overfit_examples, fitted_batch[0])]
        started = clock.now()
        result = sanity.check_overfit_batch(build, inputs.take(train_rows[pick]), y_train[pick], task=task,
                                            steps=opts.overfit_steps, lr=opts.lr, seed=cfg.seed,
                                            clock=clock.now, strategy=strategy)
        total, steps, step = clock.now() - started, result.numbers["steps"], result.numbers["step_seconds"]
        if step:
            speed["row"], speed["setup"] = step / len(pick), max(total - steps * step, 0.0)
        else:
            speed["row"], speed["setup"] = total / max(steps * len(pick), 1), 0.0
        return result

    def lr_range():
        steps = opts.lr_steps
        batch_size = fitted_batch[0]
        if timed and "row" in speed:
            steps = units_that_fit(left() - speed["setup"], speed["row"] * batch_size, steps, MIN_LR_STEPS)
            if not steps:
                return too_little("LR range test", f"sweeps fewer than {MIN_LR_STEPS} steps")
        # A shorter sweep keeps the full sweep's steps a decade and starts higher: where the
        # loss bottoms out depends on how fast the LR grows, so a sweep squeezed into fewer
        # steps would suggest another LR (measured on mnist5k: 78 steps over the same range
        # suggested 3.4x the LR 192 steps did); the lowest LRs barely move the weights anyway.
        lr_min = float(sanity.sweep_lrs(opts.lr_min, opts.lr_max, opts.lr_steps)[-steps])
        started = clock.now()
        result, sweep = sanity.lr_range_test(
            build, x_train, y_train, task=task, lr_min=lr_min, lr_max=opts.lr_max, steps=steps,
            batch_size=batch_size, seed=cfg.seed, strategy=strategy)
        if result.numbers.get("step_seconds"):  # a typical step, its tracing left out
            speed["row"] = result.numbers["step_seconds"] / batch_size
        elif len(sweep):
            spent = clock.now() - started - speed.get("setup", 0.0)
            speed["row"] = max(spent, 0.0) / (len(sweep) * batch_size) or speed.get("row", 0.0)
        if batch_size < cfg.train.batch_size and result.numbers["suggested_lr"]:
            # Swept at the batch that fits train.max_memory; training scales it back down the same way
            result.numbers["suggested_lr"] /= fitted_batch[1]
            result.message += (f" (swept at batch {batch_size}, the batch that fits train.max_memory; "
                               f"suggested LR stated for train.batch_size={cfg.train.batch_size})")
        write_csv(ctx.work / "lr_range.csv", sweep)
        sanity.plot_lr_range(sweep, result.numbers["suggested_lr"], ctx.work / "lr_range.png")
        if steps < opts.lr_steps:
            result.message += (f" ({steps} of check.lr_steps={opts.lr_steps}, the top of the sweep from {lr_min:.1e}: "
                               "what fits the checks' share of the budget)")
        return result

    def zero_input():
        # Two trainings of zero_input_epochs over the rows (and a forward pass over a quarter as
        # many validation rows).
        rows, fit_val = len(y_train), len(val_rows)
        if timed and "row" in speed:
            rows = units_that_fit(left() - 2 * speed["setup"], speed["row"] * (2 * opts.zero_input_epochs + 0.5),
                                  rows, MIN_ZERO_INPUT_ROWS)
            fit_val = min(fit_val, max(rows // 4, 1))
            if not rows:
                return too_little("zero-input baseline", f"trains fewer than {MIN_ZERO_INPUT_ROWS} rows twice")
        rng = np.random.default_rng(cfg.seed)
        pick, pick_val = (np.sort(rng.permutation(rows_in)[:n]) for rows_in, n in ((len(y_train), rows),
                                                                                   (len(val_rows), fit_val)))
        pick_val = val_rows[pick_val]
        train = (x_train, y_train) if rows == len(y_train) else (select(x_train, pick), y_train[pick])
        result = sanity.check_input_independent(
            build, train, (inputs.take(pick_val), y[pick_val]), inputs.blank, task=task,
            epochs=opts.zero_input_epochs, lr=opts.lr * fitted_batch[1], batch_size=fitted_batch[0], seed=cfg.seed,
            strategy=strategy)
        if rows < len(y_train):
            result.message += f" (on {rows} of the {len(y_train)} rows: what fits the checks' share of the budget)"
            result.numbers["rows"] = rows
        return result

    # Cheapest and most useful first (the LR test feeds train.lr=auto; the zero-input
    # baseline trains twice). What does not fit the checks' share of a budget is skipped,
    # but for the overfit check: it times the model, and without that speed the run plan
    # cannot size training (a slow machine once spent the share on the initial loss, and
    # the run trained unplanned at the data's full size).
    results = []
    checks = [("initial loss", initial_loss, True), ("overfit one batch", overfit, False),
              ("LR range test", lr_range, True), ("zero-input baseline", zero_input, True)]
    for check_name, check, skippable in checks:
        if timed and results and box.remaining() < 0 and skippable:
            found = [_skipped(check_name, f"skipped: the checks' share of budget={cfg.budget} "
                                          f"({TIME.of_budget:.0%}, {box.seconds:.1f}s) is spent")]
        else:
            found = check()
            found = found if isinstance(found, list) else [found]
        for result in found:
            results.append(result)
            print(result.line(), flush=True)
    suggested = next(r.numbers.get("suggested_lr") for r in results if r.name == "LR range test")

    failed = [r.name for r in results if r.status == sanity.FAIL]
    warned = [r.name for r in results if r.status == sanity.WARN]
    if failed:
        ctx.log(f"FAILED: {', '.join(failed)}; fix this before trusting any score")
    else:
        ctx.log(f"{len(results) - len(warned)} of {len(results)} checks passed"
                + (f", warnings: {', '.join(warned)}" if warned else ""))
    if suggested:
        ctx.log(f"LR range plot: {ctx.rundir.path / NAME / 'lr_range.png'}; "
                f"train.lr=auto trains with the suggested LR {suggested:.3g}")
    record = _record(results, suggested, name)
    if beside:
        record["beside"] = beside
    if "row" in speed:  # what the run planner (comp.planner) sizes training with
        record["speed"] = {"row_seconds": speed["row"], "setup_seconds": speed["setup"],
                           "batch_size": cfg.train.batch_size, "input_shape": list(spec.shape),
                           "data_shape": data_shape}
    return record


def units_that_fit(seconds: float, unit_seconds: float, wanted: int, least: int) -> int:
    """How many of ``wanted`` units (steps, rows) of ``unit_seconds`` each fit ``seconds``;
    0 when fewer than ``least`` (or all wanted, when fewer are wanted) do."""
    n = min(wanted, int(max(seconds, 0.0) / unit_seconds)) if unit_seconds > 0 else wanted
    return n if n >= min(least, wanted) else 0


def _skipped(name: str, why: str):
    from comp.training.sanity import WARN, CheckResult

    return CheckResult(name, WARN, why, {"skipped": True})


def _record(results, suggested, model: str) -> dict:
    from comp.training import sanity

    failed = [r.name for r in results if r.status == sanity.FAIL]
    warned = [r.name for r in results if r.status == sanity.WARN]
    return {
        "status": sanity.FAIL if failed else sanity.WARN if warned else sanity.PASS,
        "failed": failed,
        "warned": warned,
        "suggested_lr": suggested,
        "skipped": [r.name for r in results if r.numbers.get("skipped")],
        "model": model,
        "checks": [r.to_dict() for r in results],
    }


def _skip_all(ctx: StageContext, why: str) -> dict:
    results = [_skipped(n, f"skipped: {why}") for n in ("initial loss", "overfit one batch", "LR range test",
                                                          "zero-input baseline")]
    from comp.stages.training import model_name

    ctx.log(f"all checks skipped: {why}")
    return _record(results, None, model_name(ctx.cfg, ctx.competition, ctx.task))


def _report_lr_range(run) -> str:
    from comp.html import note, png

    lr = run.folder(NAME) / "lr_range.png"
    return png(lr, "LR range test") if lr.is_file() else note("the LR range test did not run")


REPORT = {"training": _report_lr_range}
