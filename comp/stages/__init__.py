"""The stages in pipeline order. A stage module has NAME, HELP, CONFIG (the config keys
its result depends on), TRAINS, ``inputs(cfg, available)`` and ``run(ctx) -> record``."""
from comp.stages import baseline, predict, split, submit

STAGES = {m.NAME: m for m in (split, baseline, predict, submit)}

# Stages of the recipe that this version does not have yet; named so errors can say so.
PLANNED = ("inspect", "regularize", "tune", "ensemble")
