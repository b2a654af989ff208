"""What plugin authors import: the types a model or augmentation plugin receives or returns.

A model plugin is a function ``(input_spec, task, hp) -> keras.Model`` that maps float
images in [0, 1] of ``input_spec.shape`` to ``task.head(features)``; ``hp`` is a
keras-tuner ``HyperParameters`` so `tune` can search the plugin's own knobs.
An augmentation plugin is an :class:`Augmentation` instance.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class InputSpec:
    """Shape of one example as the model sees it: (height, width, channels)."""

    shape: tuple[int, ...]


@dataclass(frozen=True)
class Augmentation:
    """A Keras preprocessing layer factory and where it is safe to use.

    ``build(input_spec)`` returns a layer that changes inputs only when ``training=True``.
    ``tasks`` lists the task kinds whose labels it preserves; ``tta_safe`` says whether
    it may be used for test-time augmentation.
    """

    build: Callable[[InputSpec], Any]
    tasks: tuple[str, ...]
    tta_safe: bool
    description: str
