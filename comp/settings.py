"""Typed settings: a dataclass field declares its default, help text, value kind, range and
choices in one place; the key schema, ``--help``, the defaults and the validation of every
value (from YAML or the command line) are derived from the fields.

Written here rather than taken from OmegaConf's structured configs: comp's values have
kinds of their own (a number or ``auto``, a duration, a fold count or ``all``, a list of
``NAME:STRENGTH`` entries) and its errors are one line naming the key, where it was set and
what to write instead, which OmegaConf's validation messages are not.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable

import yaml


class Kind:
    """How a value of one kind is read: ``parse(value, text)`` returns it or raises
    ValueError (``text``: the stripped string when the value came as one, else None)."""

    describe = "a value"
    hint = ""  # added to the error, e.g. what ``auto`` means

    def parse(self, value: Any, text: str | None) -> Any:
        raise NotImplementedError


class Int(Kind):
    describe = "an integer"

    def parse(self, value, text):
        if isinstance(value, bool) or (text is None and not isinstance(value, int)):
            raise ValueError
        return int(text) if text is not None else value


class Float(Kind):
    describe = "a number"

    def parse(self, value, text):
        if isinstance(value, bool):
            raise ValueError
        return float(text) if text is not None else float(value)


class NumberOrAuto(Kind):
    """A number for which ``accept`` holds, or the word ``auto``."""

    describe = "a number"

    def __init__(self, accept: Callable[[float], bool], hint: str):
        self.accept, self.hint = accept, hint

    def parse(self, value, text):
        if isinstance(value, bool):
            raise ValueError
        if (text or "").lower() == "auto":
            return "auto"
        result = float(text) if text is not None else float(value)
        if not self.accept(result):
            raise ValueError
        return result


_BOOL = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


class Bool(Kind):
    describe = "true or false"

    def parse(self, value, text):
        if text is not None:
            return _BOOL[text.lower()]
        if isinstance(value, bool):
            return value
        raise ValueError


class Str(Kind):
    describe = "a string"

    def parse(self, value, text):
        if text is None and not isinstance(value, (int, float)):
            raise ValueError
        return text if text is not None else str(value)


class Duration(Kind):
    describe = "a duration above zero such as 90s, 15m or 2h"

    def parse(self, value, text):
        result = text if text is not None else str(value)
        if parse_duration(result) <= 0:
            raise ValueError
        return result


class Name(Kind):
    describe = "a plain folder name (letters, digits, _ . = -; no path)"

    def parse(self, value, text):
        result = text if text is not None else str(value)
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.=-]*", result) or result in (".", ".."):
            raise ValueError
        return result


class Size(Kind):
    describe = "[height, width] in whole pixels of at least 1, such as [32, 32]"

    def parse(self, value, text):
        result = yaml.safe_load(text) if text is not None else value
        if (not isinstance(result, list) or len(result) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in result)):
            raise ValueError
        return result


class Folds(Kind):
    describe = "a whole number of folds of at least 1, or all"

    def parse(self, value, text):
        result = "all" if (text or "").lower() == "all" else (int(text) if text is not None else value)
        if result != "all" and (isinstance(result, bool) or not isinstance(result, int) or result < 1):
            raise ValueError
        return result


class Every(Kind):
    describe = "auto or a whole number of at least 1"

    def parse(self, value, text):
        result = yaml.safe_load(text) if text is not None else value
        if isinstance(result, str) and result.lower() == "auto":
            return "auto"
        if isinstance(result, bool) or not isinstance(result, int) or result < 1:
            raise ValueError
        return result


class Views(Kind):
    describe = "auto, a number of views of at least 1, or a list of view names"

    def parse(self, value, text):
        result = yaml.safe_load(text) if text is not None else value
        if isinstance(result, str) and result.lower() == "auto":
            return "auto"
        if isinstance(result, str):
            result = [s.strip() for s in result.split(",") if s.strip()]
        if not ((isinstance(result, int) and not isinstance(result, bool) and result >= 1)
                or (isinstance(result, list) and all(isinstance(v, str) for v in result))):
            raise ValueError
        return result


class Items(Kind):
    """A list (``[a, b]`` or ``a,b``); with ``auto`` the word ``auto`` too."""

    def __init__(self, describe: str = "a list such as [a, b]", auto: bool = False):
        self.describe, self.auto = describe, auto

    def parse(self, value, text):
        if self.auto and (text or "").lower() == "auto":
            return "auto"
        result = yaml.safe_load(text) if text is not None else value
        if isinstance(result, str):
            result = [s.strip() for s in result.split(",") if s.strip()]
        if not isinstance(result, list):
            raise ValueError
        return result


class Mapping(Kind):
    describe = "a mapping such as {a: 1}"

    def parse(self, value, text):
        result = yaml.safe_load(text) if text is not None else value
        if not isinstance(result, dict):
            raise ValueError
        return result


@dataclass(frozen=True)
class Spec:
    """What one key takes: its kind, help, choices, range, and whether it may be null."""

    kind: Kind
    help: str
    choices: tuple[str, ...] = ()
    low: float | None = None  # numbers: the smallest value allowed
    high: float | None = None  # numbers: the largest value allowed
    open_low: bool = False  # low itself is not allowed (e.g. a learning rate > 0)
    nullable: bool = False

    def coerce(self, key: str, value: Any, where: str) -> Any:
        """``value`` checked and converted (strings from the command line are parsed); a
        ``ConfigError`` naming ``key`` and ``where`` otherwise."""
        from comp.errors import ConfigError

        text = value.strip() if isinstance(value, str) else None
        if value is None or (text is not None and text.lower() in ("null", "none", "~") and self.nullable):
            if self.nullable:
                return None
            raise ConfigError(f"{key} in {where}: expected {self.kind.describe}, got null")
        try:
            result = self.kind.parse(value, text)
        except (ValueError, KeyError, TypeError, yaml.YAMLError):
            raise ConfigError(f"{key} in {where}: expected {self.kind.describe}, got {value!r}{self.kind.hint}") from None
        if self.choices and str(result) not in self.choices:
            raise ConfigError(f"{key} in {where}: {result!r} is not one of {', '.join(self.choices)}")
        if isinstance(result, (int, float)) and not isinstance(result, bool):
            too_low = self.low is not None and (result <= self.low if self.open_low else result < self.low)
            too_high = self.high is not None and result > self.high
            if too_low or too_high:
                bounds = (f"{'>' if self.open_low else '>='} {self.low:g}" if self.low is not None else "")
                bounds += (" and " if bounds and self.high is not None else "") + (
                    f"<= {self.high:g}" if self.high is not None else "")
                raise ConfigError(f"{key} in {where}: {result!r} is out of range; use a number {bounds}")
        return result


def setting(default: Any, help: str, kind: Kind, **limits: Any) -> Any:
    """A dataclass field holding a setting: its default (a list or dict is copied per
    instance), help, ``kind`` and limits (``choices``, ``low``, ``high``, ``open_low``,
    ``nullable``)."""
    spec = Spec(kind, help, **limits)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"setting": spec})
    return dataclasses.field(default=default, metadata={"setting": spec})


def schema(cls: type, prefix: str = "") -> dict[str, Spec]:
    """Every key of the settings dataclass ``cls`` (nested sections flattened with dots), in
    declaration order, with its ``Spec``."""
    out: dict[str, Spec] = {}
    for f in dataclasses.fields(cls):
        if "setting" in f.metadata:
            out[prefix + f.name] = f.metadata["setting"]
        else:
            out.update(schema(f.metadata["section"], prefix + f.name + "."))
    return out


def section(cls: type) -> Any:
    """A dataclass field holding the nested settings section ``cls`` (at its defaults)."""
    return dataclasses.field(default_factory=cls, metadata={"section": cls})


def flatten(settings: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of a settings dataclass instance."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if "setting" in f.metadata:
            out[prefix + f.name] = value
        else:
            out.update(flatten(value, prefix + f.name + "."))
    return out


def build(cls: type, flat: dict[str, Any], prefix: str = "") -> Any:
    """An instance of ``cls`` from dotted values (checked before); missing keys keep their defaults."""
    values = {}
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if "setting" in f.metadata:
            if key in flat:
                values[f.name] = flat[key]
        else:
            values[f.name] = build(f.metadata["section"], flat, key + ".")
    return cls(**values)


def parse_duration(text: str) -> float:
    """'90s', '15m', '2h', '1h30m' or a plain number of seconds -> seconds."""
    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(text)
    scale = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * scale[u] for n, u in parts)
