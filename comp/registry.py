"""Plugin discovery over the entry-point groups ``comp.models``, ``comp.augmentations``,
``comp.metrics`` and ``comp.tasks``.

Built-in plugins (under ``plugins/``) are declared in pyproject.toml like anyone else's,
so this module never imports them directly. Listing reads metadata only; a plugin is
imported when it is used, and an import failure names its distribution and entry point.
"""
from __future__ import annotations

import difflib
import fnmatch
import os
import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from comp.errors import PluginError


@dataclass(frozen=True)
class PluginInfo:
    name: str
    value: str  # "module:attr"
    distribution: str  # "name version"
    group: str

    @property
    def where(self) -> str:
        return f"entry point '{self.name} = {self.value}' in group {self.group} of distribution {self.distribution}"


class Registry:
    """Plugins of one kind, found through one entry-point group."""

    def __init__(self, group: str, kind: str):
        self.group = group
        self.kind = kind
        self._found: tuple[tuple, dict[str, list[EntryPoint]]] | None = None

    def _entry_points(self) -> dict[str, list[EntryPoint]]:
        key = _installed()
        if self._found is None or self._found[0] != key:
            found: dict[str, list[EntryPoint]] = {}
            for ep in entry_points(group=self.group):
                # An editable install can expose the same distribution twice; count it once.
                if not any(_dist(e) == _dist(ep) for e in found.get(ep.name, [])):
                    found.setdefault(ep.name, []).append(ep)
            self._found = key, found
        return self._found[1]

    def list(self, pattern: str = "*") -> list[PluginInfo]:
        """Installed plugins whose name matches the wildcard ``pattern``, without importing them."""
        return [
            PluginInfo(name, ep.value, _dist(ep), self.group)
            for name, eps in sorted(self._entry_points().items())
            if fnmatch.fnmatch(name, pattern)
            for ep in eps
        ]

    def info(self, name: str) -> PluginInfo:
        eps = self._entry_points()
        if name not in eps:
            close = difflib.get_close_matches(name, list(eps), n=3, cutoff=0.4)
            hint = f"closest: {', '.join(close)}" if close else f"installed: {', '.join(sorted(eps)) or 'none'}"
            raise PluginError(f"no {self.kind} plugin named '{name}' ({hint}); see `comp plugins`")
        if len(eps[name]) > 1:
            owners = " and ".join(_dist(ep) for ep in eps[name])
            raise PluginError(
                f"{self.kind} plugin '{name}' is provided by both {owners}; uninstall one of them"
            )
        ep = eps[name][0]
        return PluginInfo(name, ep.value, _dist(ep), self.group)

    def load(self, name: str) -> Any:
        """Import and return the object behind plugin ``name``."""
        info = self.info(name)
        (ep,) = self._entry_points()[name]
        try:
            return ep.load()
        except Exception as exc:  # any import-time failure is the plugin's, so say whose
            raise PluginError(
                f"{self.kind} plugin '{name}' failed to import ({type(exc).__name__}: {exc}); "
                f"{info.where}: fix or uninstall that distribution"
            ) from exc


def _installed() -> tuple:
    """What the installed distributions' metadata depends on: the import path and each of its
    folders' modification times (installing or removing a distribution adds or removes a
    folder or file there). Reading every distribution's entry points took ~20 ms a lookup,
    3 s of a short run's 55 s; a lookup now reads them again only when this changes."""
    stamps = []
    for entry in sys.path:
        try:
            stamps.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            stamps.append((entry, None))
    return tuple(stamps)


def _dist(ep: EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"


MODELS = Registry("comp.models", "model")
AUGMENTATIONS = Registry("comp.augmentations", "augmentation")
METRICS = Registry("comp.metrics", "metric")
TASKS = Registry("comp.tasks", "task")
REGISTRIES = {"models": MODELS, "augmentations": AUGMENTATIONS, "metrics": METRICS, "tasks": TASKS}
