"""A trained fold model on disk: a ``.keras`` file, or a pickled estimator with its input spec.

Both load into a :class:`FoldModel` whose ``outputs`` are what the task's head gives,
so prediction treats Keras and non-Keras models alike.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from comp.api import InputSpec

KERAS_FILE = "model.keras"
ESTIMATOR_FILE = "model.pkl"


@dataclass
class FoldModel:
    model: Any  # keras.Model, or a fitted estimator (a list of them for multi-output tasks)
    spec: InputSpec | None = None  # estimators only: the columns as fit on the fold's rows
    forwards: dict = field(default_factory=dict, repr=False)  # traced inference per view, reused

    @property
    def is_keras(self) -> bool:
        return self.spec is None

    def outputs(self, inputs, rows: np.ndarray, task: Any, batch_size: int = 256, view: Any = None) -> np.ndarray:
        """The head's outputs on ``rows`` of ``inputs`` (an ``Inputs``), in inference mode,
        through a test-time ``view`` when given (Keras models only)."""
        if not self.is_keras:
            return task.estimator_outputs(self.model, inputs.frame(rows, self.spec))
        from comp.training.inference import make_forward, predict_outputs

        key = id(view) if view is not None else None
        if key not in self.forwards:  # tracing costs more than predicting a small fold's rows
            self.forwards[key] = (make_forward(self.model, view), view)  # the view is kept alive with its id
        return predict_outputs(self.model, inputs.rows(rows), batch_size, forward=self.forwards[key][0])

    def predictions(self, inputs, rows: np.ndarray, task: Any, batch_size: int = 256,
                    views: list | None = None) -> np.ndarray:
        """The task's predictions on ``rows``, averaged over the original and ``views``."""
        passes = [None, *(views or [])] if self.is_keras else [None]
        total = sum(task.predictions(self.outputs(inputs, rows, task, batch_size, view)).astype(np.float64)
                    for view in passes)
        return (total / len(passes)).astype(np.float32)


def save_fold_model(model: Any, folder: Path, spec: InputSpec | None = None) -> Path:
    """Write atomically: ``model.keras`` for a Keras model, else ``model.pkl`` (estimator + spec)."""
    folder.mkdir(parents=True, exist_ok=True)
    if spec is None:
        path = folder / KERAS_FILE
        tmp = folder / f".{path.stem}.tmp.keras"  # Keras insists on the .keras suffix
        model.save(tmp)
    else:
        path = folder / ESTIMATOR_FILE
        tmp = folder / f".{path.name}.tmp"
        with open(tmp, "wb") as fh:
            pickle.dump({"estimator": model, "spec": spec}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return path


def load_fold_model(folder: Path) -> FoldModel:
    """The fold model saved in ``folder``; Keras models load with ``safe_mode=True``."""
    if (folder / ESTIMATOR_FILE).is_file():
        # Our own file, written by save_fold_model in this run directory.
        with open(folder / ESTIMATOR_FILE, "rb") as fh:
            saved = pickle.load(fh)
        return FoldModel(saved["estimator"], saved["spec"])
    import keras

    import comp.layers  # noqa: F401  registers comp's layers for deserialisation

    return FoldModel(keras.saving.load_model(folder / KERAS_FILE, safe_mode=True))
