"""Plain descriptions of what to train and how: the inputs of ``cross_validate``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    """A model plugin by name, the hyperparameters fixed for it and the augmentations before it."""

    name: str
    hp: dict[str, Any] = field(default_factory=dict)
    augmentations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "hp": dict(self.hp), "augmentations": list(self.augmentations)}


@dataclass(frozen=True)
class TrainSpec:
    """How a Keras model is trained on one fold (non-Keras models ignore what does not apply)."""

    lr: float = 3e-4
    epochs: int = 60
    batch_size: int = 64  # per replica
    patience: int = 10
    loss: str = "auto"  # a name the task kind knows
    strategy: str = "auto"
    lr_scaling: str = "linear"
    mixed_precision: str = "auto"
    bn_momentum: float | str = "auto"
    diagnostics: bool = True
    predict_batch_size: int = 256
