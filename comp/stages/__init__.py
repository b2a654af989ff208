"""The stages in pipeline order. A stage module has NAME, HELP, CONFIG (the config keys
its result depends on), TRAINS, ``inputs(cfg, available)`` and ``run(ctx) -> record``,
and optionally ``validate(cfg, competition, task)``, called for every planned stage
before anything is written."""
from comp.stages import baseline, check, ensemble, inspect, predict, regularize, split, submit, tune

STAGES = {m.NAME: m for m in (inspect, split, check, baseline, regularize, tune, ensemble, predict, submit)}

# Stages of the recipe that this version does not have yet; named so errors can say so.
PLANNED: tuple[str, ...] = ()
