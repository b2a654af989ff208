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

    lr: float = 3e-4  # the peak LR of the schedule
    epochs: int = 60  # at most; a budget plans fewer, early stopping (without a budget) may stop sooner
    batch_size: int = 64  # per replica
    patience: int = 10
    loss: str = "auto"  # a name the task kind knows
    optimizer: str = "adam"  # adam | adamw | sgd
    weight_decay: float = 0.0  # decoupled (adamw, sgd); biases and BatchNorm are not decayed
    schedule: str = "constant"  # constant | cosine | onecycle | step | plateau
    warmup: float = 0.0  # epochs of linear warmup
    label_smoothing: float = 0.0
    clip: float = 0.0  # global gradient-norm clipping; 0 = off
    ema: float = 0.0  # momentum of the EMA of the weights (evaluated and kept); 0 = off
    # Kept for the ensemble (comp.training.averaging): the top-k epochs' weights, the SWA mean of
    # the last epochs, the EMA of the weights (auto: a momentum from the steps per epoch; 0 = off)
    snapshots: int = 0
    swa_epochs: int = 0
    keep_ema: float | str = 0.0
    strategy: str = "auto"
    lr_scaling: str = "linear"
    mixed_precision: str = "auto"
    xla: str = "auto"  # compile the train step with XLA: auto = on GPU (falls back if it cannot compile)
    bn_momentum: float | str = "auto"
    diagnostics: bool = True
    probe_every: int | str = "auto"  # epochs between the diagnostics' probes; auto: by their share of the time
    predict_batch_size: int = 256
