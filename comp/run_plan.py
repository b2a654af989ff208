"""The run plan in a run directory: made (``comp.planner``) from stage check's measured speed,
the folds and the budget just before the main training stage runs; kept in
``runs/<run>/plan.json``.

The planned input size becomes ``data.image_size`` for the main stage and every stage after
it (so their records, keys and ``config.yaml`` say what they trained at); the stages before
it keep the config as given. So does the plan's main model, where it replaces a pretrained
backbone whose fine-tuning fits no epoch by its frozen features. A later command on the same
run applies the stored plan first, so a main stage that is unchanged stays unchanged.
"""
from __future__ import annotations

from typing import Any

from comp import artifacts, clock
from comp.files import read_json, write_json

PLAN = "plan.json"
FROZEN_FEATURES = "frozen_features"  # the plugin a pretrained backbone's frozen features train with


def stored(run_path) -> dict | None:
    path = run_path / PLAN
    return read_json(path) if path.is_file() else None


def planned_config(cfg, plan: dict | None):
    """``cfg`` with the plan's input size (unless the user set ``data.image_size``), its
    main model's longest schedule (``train.epochs``, when the plan stretched it) and, where it
    left a table's network out, the portfolio without it (``baseline.variants``)."""
    plan = plan or {}
    changes = {}
    size = plan.get("size")
    if size and not cfg.data.image_size and size != plan.get("data_size"):
        changes["data.image_size"] = list(size)
    if plan.get("stretched") and cfg.train.epochs == plan.get("train_epochs"):  # a train.epochs= given since wins
        changes["train.epochs"] = int(plan["max_epochs"])
    if plan.get("left_out") and cfg.baseline.variants == "auto":  # baseline.variants= given since wins
        changes["baseline.variants"] = list(plan["variants"])
    instead = plan.get("main_model")
    if instead and (cfg.model.name, dict(cfg.model.hp)) == (instead["from"], instead["from_hp"]):  # a model= since wins
        changes["model.name"], changes["model.hp"] = instead["name"], dict(instead["hp"])
        changes.pop("data.image_size", None)  # the size was chosen for fine-tuning: features see the data's own
        variants = cfg.baseline.variants
        if isinstance(variants, list) and instead["name"] in variants:  # listed beside it: now it is the main model
            changes["baseline.variants"] = [v for v in variants if v != instead["name"]]
    return cfg.merged(changes, where="the run plan (plan.json)") if changes else cfg


def make(cfg, competition, task, rundir, budget, main: str, later: dict[str, Any]) -> tuple[dict | None, str]:
    """(the plan for ``main``, as stored) or (None, why there is none). ``later``: the stages
    after it, by name, that tell the plan the least time they can use (``least_seconds``) or
    what they need at the budget's end (``reserve_seconds``: prediction)."""
    from comp.modalities import modality_of
    from comp.planner import Speed, Workload, plan_run, test_pass_seconds

    check = rundir.record("check")
    speed = (check or {}).get("speed")
    if not speed:
        return None, ("stage check measured no speed (it did not run, skipped its timed checks, or the model is "
                      "an estimator with no network beside it): the training stages share the time by weight")
    folds = artifacts.read_folds(rundir.output("split") / artifacts.FOLDS, competition.train[competition.id_col])
    n_folds = int(folds.max()) + 1
    rows = int((folds >= 0).sum())
    shape = tuple(speed["input_shape"]) if speed.get("input_shape") else None  # where check timed the model
    own = speed.get("data_shape") or shape  # the data's own size: the largest candidate
    sizes = () if cfg.data.image_size else modality_of(competition).planned_sizes(own)
    epochs = int(cfg.train.epochs)
    # Beside an estimator check measured the portfolio's network (comp.stages.check): the plan
    # funds its schedule. The searches search the estimator, whose cost it does not forecast,
    # so they take what is left and its schedule is not stretched for them.
    beside = (check["beside"], check["model"]) if check.get("beside") else None
    work = Workload(n_folds, rows - rows // n_folds, rows // n_folds, epochs, tuple(sizes),
                    max(epochs, round(epochs * cfg.baseline.stretch)), len(competition.test_ids))
    hooks = {name: (lambda f, e, m=module: m.least_seconds(cfg, f, e, n_folds))
             for name, module in later.items() if hasattr(module, "least_seconds")}
    predict = next(((lambda p, m=module: m.reserve_seconds(cfg, p, n_folds))
                    for module in later.values() if hasattr(module, "reserve_seconds")), None)
    searches = {name: hook for name, hook in hooks.items() if later[name].TIME and later[name].TIME.training}
    after = {name: hook for name, hook in hooks.items() if name not in searches}
    if beside:  # a table's candidates are fold models without weight sets to score: the least tier
        after = {name: (lambda f, e, h=hook: _least(h(f, e))) for name, hook in after.items()}
    training = budget.training_end() - clock.now()
    plan = plan_run(training, Speed(speed["row_seconds"], speed["setup_seconds"], shape), work,
                    {} if beside else searches, after, predict, budget.reserve_bounds(), beside,
                    optional=cfg.baseline.variants == "auto")
    budget.reserve(plan.reserved)
    budget.fund(main, plan.main_seconds)
    budget.keep(sum(plan.kept.values()))
    # What one more fold model costs the stages after training (stage bag's own accounting):
    # each stage's time for a model at the planned size, its passes over the rows it predicts.
    test_pass = test_pass_seconds(Speed(speed["row_seconds"], speed["setup_seconds"], shape), work, plan.size)
    passes = {"ensemble": test_pass * work.val_rows / max(work.test_rows, 1), "predict": test_pass}
    # A network left out predicts nothing, and the estimators that do were not timed by check:
    # charged the network's passes, a bagged estimator looked many times dearer than it is.
    model_after = {} if plan.left_out else {
        name: round(module.model_seconds(cfg, passes[name]), 2) for name, module in later.items()
        if name in passes and hasattr(module, "model_seconds")}
    reserved_models = next((module.MODELS_A_FOLD for module in later.values() if hasattr(module, "reserve_seconds")), 0)
    data = {"stage": main, "budget_s": budget.seconds, "at_s": round(budget.elapsed(), 1), **plan.to_dict(),
            "data_size": list(sizes[0]) if sizes else None, "speed": speed, "lines": plan.lines(main),
            "model_after": model_after, "reserved_models_a_fold": reserved_models}
    if plan.left_out:  # the main stage and every stage after it train without the network
        from comp.stages.training import variant_names

        data["variants"] = [name for name in variant_names(cfg, competition, task) if name != plan.left_out]
    if beside and searches:
        left = ("" if plan.left_out else
                f" (~{max(plan.training_seconds - plan.main_seconds - sum(plan.kept.values()), 0):.0f}s)")
        data["lines"].append(f"run plan: {', '.join(searches)} search {beside[0]} in what {main} leaves{left}")
    instead = frozen_alone(cfg, plan.whole_epochs)
    if instead:
        data["main_model"] = instead
        at = f" at {plan.size[0]}x{plan.size[1]}" if plan.size else ""
        data["lines"][0] = (f"run plan: {plan.training_seconds:.0f}s of training; fine-tuning {cfg.model.name} fits no "
                            f"whole epoch a fold (~{plan.epoch_seconds:.0f}s an epoch{at}): its frozen features "
                            f"train alone instead (model={instead['name']}, on the data's own size), {main} first")
    return data, ""


def _least(tiers) -> float:
    return min(tiers) if isinstance(tiers, (list, tuple)) else tiers


def frozen_alone(cfg, whole_epochs: int) -> dict | None:
    """The main model the plan trains instead of ``cfg``'s when fine-tuning it fits no whole
    epoch a fold: the frozen features its plugin declares beside it (``comp.api.companions``),
    a forward pass per image instead of a schedule (issue 24: on a CPU often the better model
    per second, and a fine-tuning stopped inside its first epoch barely moves the pretrained
    network). {"from", "from_hp", "name", "hp"}, or None."""
    from comp.stages.training import companion_models

    if whole_epochs != 0:
        return None
    frozen = [(name, hp) for name, hp in companion_models(cfg.model.name, dict(cfg.model.hp))
              if name == FROZEN_FEATURES]
    if not frozen:
        return None
    name, hp = frozen[0]
    return {"from": cfg.model.name, "from_hp": dict(cfg.model.hp), "name": name, "hp": hp}


def save(run_path, plan: dict) -> None:
    write_json(run_path / PLAN, plan)
