"""The resume state of a fold: stateful parts that save and restore themselves.

Every part of training that changes while it runs - the model, the optimizer (its slots,
step counter and EMA of the weights), the LR schedule's plan, reduce-on-plateau, early
stopping, the best weights, the history, the budget plan - is a component with a name,
``get_state``/``set_state`` (JSON) and ``get_arrays``/``set_arrays`` (numpy). After each
epoch ``save`` writes every component's arrays to one ``state-<epoch>.npz`` and then, as
the commit point, ``state.json`` with their JSON and the arrays file's name; a kill before
that leaves the previous epoch's pair intact. ``restore`` checks every array's name, shape
and dtype before assigning any, so a state from another model is refused with one line.

Why not ``tf.train.Checkpoint``: its object graph does not see Keras 3's seed-generator
state (Dropout's RNG) and keys variables by auto-generated layer names that differ between
two builds of the same model in one process; the components below name their arrays
themselves.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Protocol

import numpy as np

from comp.files import atomic_path, write_text

STATE_JSON = "state.json"


class DamagedState(Exception):
    """A resume state that cannot be used; training starts the fold again."""


class Component(Protocol):
    """A stateful part of training; one whose number of arrays changes while it runs sets
    ``variable_arrays = True`` and gets back exactly the arrays it saved."""

    name: str

    def get_state(self) -> dict: ...

    def set_state(self, state: dict) -> None: ...

    def get_arrays(self) -> list[np.ndarray]: ...

    def set_arrays(self, arrays: list[np.ndarray]) -> None: ...


class Variables:
    """A list of variables (a model's, an optimizer's) as a component with no JSON state."""

    def __init__(self, name: str, variables: Iterable):
        self.name, self.variables = name, list(variables)

    def get_state(self) -> dict:
        return {}

    def set_state(self, state: dict) -> None:
        pass

    def get_arrays(self) -> list[np.ndarray]:
        return [np.asarray(v.numpy()) for v in self.variables]

    def set_arrays(self, arrays: list[np.ndarray]) -> None:
        for var, value in zip(self.variables, arrays):
            var.assign(value)


class Record:
    """JSON-only state kept in a dict (history, early stopping, the budget plan)."""

    def __init__(self, name: str, **initial: Any):
        self.name, self.data = name, dict(initial)

    def get_state(self) -> dict:
        return dict(self.data)

    def set_state(self, state: dict) -> None:
        self.data = dict(state)

    def get_arrays(self) -> list[np.ndarray]:
        return []

    def set_arrays(self, arrays: list[np.ndarray]) -> None:
        pass


class TrainingState:
    """The components of one fold's training, saved and restored together."""

    def __init__(self, components: Iterable[Component]):
        self.components = list(components)

    def save(self, folder: Path, epoch: int, extra: dict | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {f"{c.name}/{i}": a for c in self.components for i, a in enumerate(c.get_arrays())}
        name = f"state-{epoch:04d}.npz"
        with atomic_path(folder / name) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        write_text(folder / STATE_JSON, json.dumps({
            "epoch": epoch, "arrays": name, **(extra or {}),
            "components": {c.name: c.get_state() for c in self.components}}))
        for old in folder.glob("state-*.npz"):
            if old.name != name:
                old.unlink()

    def restore(self, folder: Path) -> dict | None:
        """Restore every component from ``folder``; the saved JSON, or None when there is none.

        A damaged state (unreadable, truncated, or arrays that do not fit this model) raises
        ``DamagedState`` before anything is assigned; the caller starts the fold again."""
        if not (folder / STATE_JSON).is_file():
            return None
        try:
            saved = json.loads((folder / STATE_JSON).read_text())
            with np.load(folder / saved["arrays"]) as stored:
                loaded = {key: stored[key] for key in stored.files}
        except Exception as exc:  # truncated or overwritten files: JSON, zip and array errors alike
            raise DamagedState(f"{folder} is damaged ({type(exc).__name__}: {exc})") from None
        plan = []
        for c in self.components:
            if getattr(c, "variable_arrays", False):  # e.g. the best weights: none until an epoch is scored
                values = [loaded[f"{c.name}/{i}"] for i in range(_count(loaded, c.name))]
                plan.append((c, values))
                continue
            current = c.get_arrays()
            values = [loaded.get(f"{c.name}/{i}") for i in range(len(current))]
            for i, (now, then) in enumerate(zip(current, values)):
                if then is None or then.shape != now.shape or then.dtype != now.dtype:
                    raise DamagedState(f"{folder / saved['arrays']}: {c.name} array {i} does not fit this model "
                                       f"(saved {None if then is None else (then.shape, str(then.dtype))}, "
                                       f"now {(now.shape, str(now.dtype))})")
            plan.append((c, values))
        for c, values in plan:
            c.set_arrays(values)
            c.set_state(saved["components"].get(c.name, {}))
        return saved


def _count(loaded: dict[str, np.ndarray], name: str) -> int:
    count = 0
    while f"{name}/{count}" in loaded:
        count += 1
    return count
