"""Search spaces as plain knobs: declared into keras-tuner, narrowed around a best value, and
checked for a best value at the edge of its range (docs/recipe.md 6)."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

EDGE = 0.05  # a best value in the outer 5% of its range (log scale for log knobs) is "at the edge"


@dataclass(frozen=True)
class Knob:
    """One searched setting: a number in [low, high] (``log``: searched on a log scale,
    ``integer``: whole numbers) or one of ``choices``. ``limit`` marks a range that cannot
    grow (a model plugin's own bounds)."""

    key: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] = ()
    limit: bool = False
    default: Any = None  # the value in the configuration searched around

    @property
    def numeric(self) -> bool:
        return not self.choices

    def declare(self, hp: Any) -> None:
        """Add this knob to a keras-tuner ``HyperParameters``."""
        if self.choices:
            if len(self.choices) == 1:
                hp.Fixed(self.key, self.choices[0])
            elif set(self.choices) == {False, True} and all(isinstance(c, bool) for c in self.choices):
                hp.Boolean(self.key)
            else:
                hp.Choice(self.key, list(self.choices))
        elif self.low == self.high:
            hp.Fixed(self.key, int(self.low) if self.integer else float(self.low))
        elif self.integer:
            hp.Int(self.key, int(self.low), int(self.high), sampling="log" if self.log else "linear")
        else:
            hp.Float(self.key, float(self.low), float(self.high), sampling="log" if self.log else "linear")

    def clip(self, value: Any) -> Any:
        """``value`` inside this knob's range: keras-tuner's log-sampled ``Int`` turns a probability
        of exactly 1 into ``max_value + 1`` (its ``prob_to_value`` samples up to ``max + 1``), which
        a Bayesian oracle proposes at the edge of a narrowed range; a choice not offered becomes the
        default."""
        if not self.numeric:
            return value if value in self.choices else (self.default if self.default in self.choices
                                                        else self.choices[0])
        if self.integer:  # the bounds keras-tuner was given (``declare``)
            low, high = int(self.low), int(self.high)
            return int(min(max(round(value), low), max(high, low)))
        return float(min(max(value, self.low), self.high))

    def holds(self, value: Any) -> bool:
        """Whether ``value`` is one this knob's range offers."""
        if not self.numeric:
            return value in self.choices
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def narrowed(self, best: Any) -> "Knob":
        """A narrower knob around ``best`` for the fine search: a third of the log range on each side
        (at most 3x) or a quarter of the linear range; a choice is fixed at ``best``. A ``best``
        outside the range (a default the search never tried) leaves the knob as it is."""
        if not self.numeric:
            return replace(self, choices=(best,), default=best) if best in self.choices else self
        if best is None or not self.low <= best <= self.high:
            return self
        if self.log and self.low > 0:
            span = min(math.log(3.0), (math.log(self.high) - math.log(self.low)) / 3)
            low, high = best / math.exp(span), best * math.exp(span)
        else:
            half = (self.high - self.low) / 4
            low, high = best - half, best + half
        low, high = max(low, self.low), min(high, self.high)
        if self.integer:
            low, high = math.floor(low), math.ceil(high)
        return replace(self, low=low, high=high, default=best)

    def edge(self, best: Any) -> str | None:
        """A sentence when ``best`` lies at the edge of this knob's range, with a wider range to try."""
        if not self.numeric or self.low == self.high:
            return None
        if self.log and self.low > 0 and best > 0:
            lo, hi, at = math.log(self.low), math.log(self.high), math.log(best)
        else:
            lo, hi, at = self.low, self.high, best
        where = (at - lo) / (hi - lo)
        if EDGE < where < 1 - EDGE:
            return None
        side = "bottom" if where <= EDGE else "top"
        if self.limit:
            return (f"{self.key}={_show(best)} is at the {side} of [{_show(self.low)}, {_show(self.high)}], the "
                    "model plugin's own limit: a bigger or smaller model may be what the data asks for")
        width = hi - lo
        new_lo, new_hi = (lo - width / 2, hi - width / 2) if side == "bottom" else (lo + width / 2, hi + width / 2)
        if self.log and self.low > 0:
            new_lo, new_hi = math.exp(new_lo), math.exp(new_hi)
        if self.integer:
            new_lo, new_hi = max(1, round(new_lo)), max(1, round(new_hi))
        elif not self.log:
            new_lo = max(new_lo, 0.0) if self.low >= 0 else new_lo
        return (f"{self.key}={_show(best)} is at the {side} of its searched range [{_show(self.low)}, "
                f"{_show(self.high)}]: the range is likely wrong; try tune.space={{{self.key}: "
                f"[{_show(new_lo)}, {_show(new_hi)}]}}")


def _show(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def knobs_from_hp(space: list[Any], prefix: str) -> list[Knob]:
    """Knobs from a model plugin's own keras-tuner hyperparameters, keeping the plugin's
    ranges (its limits) and defaults."""
    knobs = []
    for param in space:
        kind, config = type(param).__name__, param.get_config()
        key = prefix + param.name
        if kind in ("Int", "Float"):
            knobs.append(Knob(key, config["min_value"], config["max_value"], log=config.get("sampling") == "log",
                              integer=kind == "Int", limit=True, default=param.default))
        elif kind == "Choice":
            knobs.append(Knob(key, choices=tuple(config["values"]), limit=True, default=param.default))
        elif kind == "Boolean":
            knobs.append(Knob(key, choices=(False, True), limit=True, default=param.default))
    return knobs


def apply_ranges(knobs: list[Knob], ranges: dict[str, Any]) -> list[Knob]:
    """``tune.space`` applied: a key's [low, high] or list of choices replaces its range, [] drops it.
    Raises ValueError naming the key for an unknown key or a malformed range."""
    by_key = {k.key: k for k in knobs}
    for key, value in ranges.items():
        if key not in by_key:
            raise ValueError(f"tune.space.{key}: not a searched knob here; searched: {', '.join(by_key) or 'none'}")
        knob = by_key[key]
        if value in ([], None):
            del by_key[key]
            continue
        if not isinstance(value, list):
            raise ValueError(f"tune.space.{key}={value!r}: give [low, high] or a list of choices, or [] to leave it out")
        if knob.numeric:
            if (len(value) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                    or value[0] > value[1] or (knob.log and value[0] <= 0)):
                raise ValueError(f"tune.space.{key}={value!r}: give [low, high] with low <= high"
                                 + (" and low > 0 (searched on a log scale)" if knob.log else ""))
            if knob.limit and (value[0] < knob.low or value[1] > knob.high):
                raise ValueError(f"tune.space.{key}={value!r}: the model plugin takes "
                                 f"{_show(knob.low)}..{_show(knob.high)}")
            by_key[key] = replace(knob, low=value[0], high=value[1])
        else:
            by_key[key] = replace(knob, choices=tuple(value))
    return list(by_key.values())
