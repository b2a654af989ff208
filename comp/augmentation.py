"""Augmentation policies: ``train.augmentations`` entries (``name`` or ``name:strength``)
resolved to plugins and checked against the inputs, the task and each plugin's strength range."""
from __future__ import annotations

import re
from typing import Any

from comp.api import Augmentation
from comp.errors import ConfigError

ENTRY = re.compile(r"\s*([A-Za-z_][\w.-]*)\s*(?::\s*(\S+))?\s*")


def parse_entry(entry: Any) -> tuple[str, float | None]:
    """``"rotate:10"`` -> ("rotate", 10.0); ``"shift"`` -> ("shift", None)."""
    match = ENTRY.fullmatch(str(entry))
    strength = None
    if match and match.group(2) is not None:
        try:
            strength = float(match.group(2))
        except ValueError:
            match = None
    if not match:
        raise ConfigError(f"train.augmentations: {entry!r} is not NAME or NAME:STRENGTH (e.g. shift or rotate:10)")
    return match.group(1), strength


def resolve(entry: Any, modality: str, task_kind: str) -> tuple[Augmentation, float | None]:
    """The plugin of one policy entry and its strength, or a one-line ConfigError."""
    from comp.registry import AUGMENTATIONS

    name, strength = parse_entry(entry)
    aug = AUGMENTATIONS.load(name)
    if modality not in aug.modalities:
        raise ConfigError(f"augmentation '{name}' works on {' or '.join(aug.modalities)} inputs, not {modality}; "
                          "remove it from train.augmentations")
    if task_kind not in aug.tasks:
        raise ConfigError(f"augmentation '{name}' does not preserve {task_kind} labels (it is declared for "
                          f"{', '.join(aug.tasks)}); remove it from train.augmentations")
    if strength is not None:
        if aug.strength is None:
            raise ConfigError(f"train.augmentations: '{name}' has no strength; write {name} alone")
        low, high = aug.strength_range
        if not low <= strength <= high:
            unit = f" ({aug.strength_unit})" if aug.strength_unit else ""
            raise ConfigError(f"train.augmentations: {name}:{strength:g} is out of range; use a strength in "
                              f"[{low:g}, {high:g}]{unit}, default {aug.strength:g}")
    return aug, strength


def check_policy(entries, modality: str, task_kind: str) -> None:
    """Every entry resolved and checked; at most one batch-level (mixing) augmentation."""
    mixing = [parse_entry(e)[0] for e in entries if resolve(e, modality, task_kind)[0].batch]
    if len(mixing) > 1:
        raise ConfigError(f"train.augmentations: {' and '.join(mixing)} both mix batches; keep one of them")


def split_policy(entries, input_spec, task_kind: str) -> tuple[list[Any], Any]:
    """(the per-example layers, in order; the batch mixer or None) of a checked policy."""
    layers, mixer = [], None
    for entry in entries:
        aug, strength = resolve(entry, input_spec.modality, task_kind)
        if aug.batch:
            mixer = aug.layer(input_spec, strength)
        else:
            layers.append(aug.layer(input_spec, strength))
    return layers, mixer


AUTO_VIEWS = 4  # predict.tta=auto for images: the original and 3 views


def test_views(entries, input_spec, task_kind: str) -> list[Any]:
    """Every test-time view the policy's TTA-safe augmentations offer, named, interleaved
    plugin by plugin (shift_right, rotate_ccw, zoom_in, shift_left, ...) so that the first
    few views cover every kind of change."""
    offered = []
    for entry in entries:
        aug, strength = resolve(entry, input_spec.modality, task_kind)
        if task_kind in aug.tasks:
            offered.append(aug.test_views(input_spec, strength))
    views = []
    for i in range(max((len(v) for v in offered), default=0)):
        views.extend(v[i] for v in offered if i < len(v))
    return views


def probe_views(entries, input_spec, task_kind: str) -> list[Any]:
    """The views of every installed TTA-safe augmentation that the policy ``entries`` leaves
    out and that is declared for this task kind (the flips, by default): whether each keeps
    this competition's labels is for the OOF score to say (stage ensemble keeps a probe view
    only where it raises a candidate's OOF score beyond the fold noise)."""
    from comp.registry import AUGMENTATIONS

    named = {parse_entry(e)[0] for e in entries}
    views = []
    for info in AUGMENTATIONS.list():
        if info.name in named:
            continue
        aug = AUGMENTATIONS.load(info.name)
        if aug.tta_safe and aug.views and input_spec.modality in aug.modalities and task_kind in aug.tasks:
            views.extend(aug.test_views(input_spec, None))
    return views


def views_for(entries, input_spec, task_kind: str, setting: Any, where: str = "predict.tta",
              leave_out: frozenset[str] | set[str] = frozenset()) -> list[Any]:
    """The test-time views a model trained with augmentations ``entries`` gets under ``setting``
    (a list of names may also name its probe views: those stage ensemble found to help);
    ``leave_out``: names of views that cannot run (``auto`` and N take the next ones offered)."""
    offered = test_views(entries, input_spec, task_kind)
    if isinstance(setting, list):
        offered += [v for v in probe_views(entries, input_spec, task_kind) if v.name not in {o.name for o in offered}]
        return [v for v in pick_views(offered, setting, where) if v.name not in leave_out]
    return pick_views([v for v in offered if v.name not in leave_out], setting, where)


def pick_views(views: list[Any], setting: Any, where: str = "predict.tta") -> list[Any]:
    """The views ``predict.tta`` asks for, the original not counted: ``auto`` the first
    ``AUTO_VIEWS - 1``, N the first N - 1, a list those named (an unknown name is an error)."""
    if setting == "auto":
        return views[:AUTO_VIEWS - 1]
    if isinstance(setting, int):
        return views[:max(setting - 1, 0)]
    by_name = {v.name: v for v in views}
    unknown = [name for name in setting if name not in by_name]
    if unknown:
        offered = ", ".join(by_name) or "none (no TTA-safe augmentation in train.augmentations)"
        raise ConfigError(f"{where}: no view named {', '.join(unknown)}; this model's views: {offered}")
    return [by_name[name] for name in setting]
