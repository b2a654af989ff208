"""Plain descriptions of what to train and how: the inputs of ``cross_validate``.

``TrainSpec`` is also the ``train`` section of the configuration: each field carries its
default, help and range (``comp.settings``), so a new ``train.*`` option is one field here
plus its use. The training library reads the fields it needs; a stage hands it the section
with ``lr`` resolved to a number.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from comp.settings import Bool, Every, Float, Int, Items, NumberOrAuto, Str, setting

LR = NumberOrAuto(lambda v: 0 < v < float("inf"),
                  "; use a positive number such as 3e-4, or auto (the LR suggested by stage check)")
MOMENTUM = NumberOrAuto(lambda v: 0 <= v < 1, "; use a number in [0, 1) such as 0.9, or auto (from the steps per epoch)")


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

    epochs: int = setting(40, "most epochs per fold: the schedule's length without a budget (early stopping may "
                              "end sooner); under budget= the plan fits the schedule into the fold's time, up to this",
                          Int(), low=1)
    batch_size: int = setting(64, "batch size per replica", Int(), low=1)
    loss: str = setting("auto", "loss: auto (the task's choice for its metric) or one the task kind takes "
                                "(regression: mse, mae, huber)", Str())
    optimizer: str = setting("adamw", "adam, adamw (decoupled weight decay) or sgd (Nesterov momentum 0.9)", Str(),
                             choices=("adam", "adamw", "sgd"))
    weight_decay: float = setting(0.01, "decoupled weight decay (adamw, sgd); biases and BatchNorm are not decayed",
                                  Float(), low=0)
    schedule: str = setting("cosine", "LR schedule after the warmup: constant, cosine (to 1% of the peak), onecycle, "
                                      "step (10x down at 50% and 75%), plateau (halve after 3 epochs without "
                                      "improvement)", Str(), choices=("constant", "cosine", "onecycle", "step", "plateau"))
    warmup: float = setting(1.0, "epochs of linear LR warmup", Float(), low=0)
    label_smoothing: float | str = setting("auto", "label smoothing of the cross-entropy; auto = the task kind's "
                                                   "default (0.1 where there are labels to smooth, else 0)",
                                           NumberOrAuto(lambda v: 0 <= v <= 0.5,
                                                        "; use a number in [0, 0.5] such as 0.1, or auto"))
    clip: float = setting(0.0, "clip the global gradient norm to this; 0 = off", Float(), low=0)
    ema: float = setting(0.0, "momentum of an EMA of the weights, evaluated each epoch and kept when best; 0 = off",
                         Float(), low=0, high=0.9999)
    # Kept for the ensemble (comp.training.averaging): the last k epochs' weights, the SWA mean of
    # the last epochs, the EMA of the weights (auto: a momentum from the steps per epoch; 0 = off)
    snapshots: int = setting(3, "keep the weights of this many last epochs per fold (the best, by the competition "
                                "metric, where early stopping runs) for the ensemble's checkpoint ensembles; 0 = none", Int(), low=0)
    swa_epochs: int = setting(5, "keep the mean of the weights of the last N epochs per fold (SWA) for the "
                                 "ensemble; 0 = none", Int(), low=0)
    keep_ema: float | str = setting("auto", "keep an EMA of the weights per fold for the ensemble (momentum; auto = "
                                            "averaging over about 2 epochs of steps; 0 = none)", MOMENTUM)
    lr: float | str = setting("auto", "peak learning rate; auto = the LR suggested by stage check's LR range test "
                                      "(1e-3 when it suggests none)", LR)
    patience: int = setting(10, "epochs without improvement of the competition metric before stopping, for the "
                                "constant and plateau schedules without a budget (a decaying schedule runs to its "
                                "end; the best epoch's weights are kept either way)", Int(), low=1)
    strategy: str = setting("auto", "tf.distribute strategy; auto picks from TF_CONFIG and the devices", Str(),
                            choices=("auto", "default", "one_device", "mirrored", "multi_worker"))
    max_memory: float | str = setting("auto", "GiB a training step's activations may take: the batch shrinks to fit "
                                              "(estimated from the model at its input size) and the LR with it, by "
                                              "train.lr_scaling; auto = a quarter of the memory available, at most 1.5",
                                      NumberOrAuto(lambda v: 0 < v < float("inf"),
                                                   "; use a positive number of GiB such as 4, or auto"))
    lr_scaling: str = setting("linear", "how the LR grows with the number of replicas (and shrinks with a batch "
                                        "cut to fit train.max_memory)", Str(),
                              choices=("linear", "sqrt", "none"))
    mixed_precision: str = setting("auto", "mixed_float16 compute; auto = on GPU only", Str(),
                                   choices=("auto", "on", "off"))
    xla: str = setting("auto", "compile the train step with XLA (jit_compile); auto = Keras's rule (GPU, no op "
                               "determinism: off in comp's deterministic runs); a step that does not compile trains "
                               "without XLA after a notice", Str(), choices=("auto", "on", "off"))
    logical_cpus: int | None = setting(None, "split the CPU into this many devices (tests the multi-device path)",
                                       Int(), low=1, nullable=True)
    augmentations: list | str = setting("auto", "augmentation plugins applied while training, each NAME or "
                                                "NAME:STRENGTH (e.g. [shift:0.15,rotate:10]); auto = the light "
                                                "label-preserving ones that fit the inputs and the task "
                                                "(images: shift, rotate, zoom)",
                                        Items("a list such as [shift, rotate:10], or auto", auto=True))
    verbose: bool = setting(False, "print one line per epoch", Bool())
    bn_momentum: float | str = setting("auto", "BatchNorm moving-statistics momentum; auto = min(0.99, max(0.5, 1 - "
                                               "4/steps per epoch))", MOMENTUM)
    diagnostics: bool = setting(True, "per-epoch diagnostics (diagnostics.csv, TensorBoard, learning curve) and "
                                      "verdicts per fold", Bool())
    probe_every: int | str = setting("auto", "epochs between the diagnostics' probes (gradients, update ratios, "
                                             "activations); auto = the first and last epochs and as many between "
                                             "as 2% of the training time allows; 1 = every epoch", Every())
