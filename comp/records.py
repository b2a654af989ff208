"""The run directory's contract between stages: typed records of what a stage published.

A stage's ``stage.json`` holds the pipeline's fields (stage, key, output_id, inputs, started,
finished, seconds, files, budget) and the stage's own. The records here are the parts that
other stages, ``predict``, ``export`` and the report read: a stage's out-of-fold result
(``Result``; an ensemble's adds its ``Member``s, each a list of ``ModelRef`` per fold). Each
round-trips through JSON unchanged (keys it does not name are kept in ``extra``), and is read
through ``RunDir.result``, which checks every published file against its checksum first.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from comp.artifacts import FOLD_DIR
from comp.objective import Objective


@dataclass(frozen=True)
class ModelRef:
    """One model of a member's fold: a fold model folder (run-relative: ``<stage>/.../fold_k``)
    and, for a kept weight set (a top epoch, an average), the folder of its ``weights.npz``
    and the set's name, assigned over the fold model's own weights."""

    model: str
    weights: str | None = None
    set: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"model": self.model}
        if self.weights:
            out.update(weights=self.weights, set=self.set)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelRef":
        return cls(data["model"], data.get("weights"), data.get("set"))

    @property
    def stages(self) -> set[str]:
        """The stages whose published files this reference reads."""
        return {path.split("/")[0] for path in (self.model, self.weights) if path}


@dataclass(frozen=True)
class Member:
    """One weighted part of a prediction: models for every fold (several per fold for a
    checkpoint ensemble), each through the same test-time ``views``."""

    name: str
    stage: str
    kind: str  # fold | snapshots | swa | ema
    weight: float
    views: list[str]
    augmentations: list[str]
    input_shape: list[int] | None
    models: list[list[ModelRef]]  # per fold

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "stage": self.stage, "kind": self.kind, "weight": self.weight,
                "views": list(self.views), "augmentations": list(self.augmentations),
                "input_shape": list(self.input_shape) if self.input_shape else None,
                "models": [[ref.to_dict() for ref in refs] for refs in self.models]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Member":
        return cls(data["name"], data["stage"], data["kind"], float(data["weight"]), list(data["views"]),
                   list(data["augmentations"]), data.get("input_shape"),
                   [[ModelRef.from_dict(ref) for ref in refs] for refs in data["models"]])

    @property
    def stages(self) -> set[str]:
        return {stage for refs in self.models for ref in refs for stage in ref.stages}


def _record_fields(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")


@dataclass
class Result:
    """What a stage scored on out-of-fold predictions: its score (``metric``, honest), the
    per-fold scores, the decoding fit on OOF rows (thresholds), and whether it has fold models
    for every fold (``fold_models``: a stage predict and the ensemble can use) with their
    model, input shape and the variants trained beside them."""

    score: float = float("nan")
    metric: str = ""  # a variant's record leaves it to its stage's
    higher_is_better: bool = True
    fold_scores: list[float] = field(default_factory=list)
    folds: int | None = None  # how many folds the fold models cover
    decoding: dict = field(default_factory=dict)
    fold_models: bool = True
    model: dict | None = None  # name, hp, augmentations (``ModelSpec.to_dict``)
    input_shape: list[int] | None = None  # images: what the models take
    variants: dict[str, "Result"] = field(default_factory=dict)
    # Per fold, the model folders (run-relative) whose mean is the stage's prediction (stage bag:
    # several seeds); empty: the stage's own fold_k/.
    fold_paths: list[list[str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # the stage's other keys, kept as they were

    @property
    def objective(self) -> Objective:
        return Objective(self.higher_is_better)

    @property
    def augmentations(self) -> list[str]:
        return list((self.model or {}).get("augmentations", []))

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON data: what ``from_dict`` read, every key as it was (a record
        made in code has every field)."""
        out = dict(self.extra)
        for name in _record_fields(type(self)):
            if name in self._present:
                out[name] = self._plain(name, getattr(self, name))
        return out

    def _plain(self, name: str, value: Any) -> Any:
        if name == "variants":
            return {k: v.to_dict() for k, v in value.items()}
        return value

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Result":
        names = _record_fields(cls)
        values = {k: cls._parse(k, data[k]) for k in names if k in data}
        result = cls(**values, extra={k: v for k, v in data.items() if k not in names})
        result._present = {k for k in names if k in data}
        return result

    @classmethod
    def _parse(cls, name: str, value: Any) -> Any:
        if name == "variants":
            return {k: Result.from_dict(v) for k, v in value.items()}
        return value

    def __post_init__(self):
        self._present = set(_record_fields(type(self)))  # ``from_dict`` narrows it to the keys it read


@dataclass
class EnsembleResult(Result):
    """The ensemble's result: its members, weighted as chosen on OOF predictions, and what made
    the prediction (``source``: ``ensemble``, or the stage whose plain fold models it is)."""

    members: list[Member] = field(default_factory=list)
    source: str = "ensemble"

    def _plain(self, name: str, value: Any) -> Any:
        if name == "members":
            return [m.to_dict() for m in value]
        return super()._plain(name, value)

    @classmethod
    def _parse(cls, name: str, value: Any) -> Any:
        if name == "members":
            return [Member.from_dict(m) for m in value]
        return super()._parse(name, value)


def fold_members(stage: str, result: Result, views: list[str]) -> list[Member]:
    """A training stage's fold models as the one member of a prediction, through ``views``."""
    return [Member(stage, stage, "fold", 1.0, list(views), result.augmentations, result.input_shape,
                   fold_refs(stage, result))]


def fold_refs(stage: str, result: Result) -> list[list[ModelRef]]:
    """Per fold, the models whose mean is a training stage's prediction."""
    if result.fold_paths:
        return [[ModelRef(path) for path in paths] for paths in result.fold_paths]
    return [[ModelRef(f"{stage}/{FOLD_DIR.format(fold=k)}")] for k in range(result.folds or 0)]


def result_of(data: dict[str, Any]) -> Result:
    """A published stage record as its result: an ensemble's, or a plain one."""
    return EnsembleResult.from_dict(data) if "members" in data else Result.from_dict(data)


def members_of(stage: str, result: Result, views: list[str]) -> list[Member]:
    """What predicts the test set for ``stage``'s result: an ensemble's members, or a training
    stage's fold models (through ``views``)."""
    if isinstance(result, EnsembleResult):
        return result.members
    return fold_members(stage, result, views)


def source_of(stage: str, result: Result) -> str:
    """What made a prediction from ``stage``'s result (a submission's name says it)."""
    return result.source if isinstance(result, EnsembleResult) else stage
