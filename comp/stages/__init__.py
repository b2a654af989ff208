"""The stages in pipeline order. A stage module has NAME, HELP, CONFIG (the config keys
its result depends on), TRAINS, TIME (its share of a budget, ``comp.budget.Share``),
``inputs(cfg, available, training)`` (the stages it reads, by role, given the finished ones
and the training stages) and ``run(ctx) -> record``; optionally ``FOLD_MODELS = False`` (a
training stage that never publishes fold models for every fold), ``validate(cfg,
competition, task)``, called for every planned stage before anything is written, and
``work(cfg, competition, task, rundir)``, what a keras-tuner worker process runs."""
from comp.stages import bag, baseline, check, ensemble, inspect, predict, regularize, split, submit, tune

STAGES = {m.NAME: m for m in (inspect, split, check, baseline, regularize, tune, bag, ensemble, predict, submit)}
TRAINING = tuple(name for name, module in STAGES.items() if module.TRAINS)

# Stages of the recipe that this version does not have yet; named so errors can say so.
PLANNED: tuple[str, ...] = ()
