"""A pretrained backbone from a KerasHub preset directory on the user's disk, fine-tuned like
the ``keras.applications`` backbones (``comp_plugins.backbones``; docs/recipe.md 12).

A KerasHub preset is a folder: ``config.json`` (the backbone's architecture),
``model.weights.h5`` (its weights) and, for image models, ``image_converter.json`` (the
input size and the scale and offset its weights expect). ``keras_hub`` reads it with
``Backbone.from_preset(folder)``; comp never passes it a hub handle (``kaggle://...``,
``hf://...``), which would download: the user copies a preset once (``keras_hub``'s
``save_to_preset``, or a preset's files from Kaggle or Hugging Face) and names the folder.

Knobs: ``preset`` (the folder), ``weights`` (``preset``: its weights; ``none``: the same
architecture from scratch), ``resolution`` (the shorter side the image is scaled to; default
the preset's own input size), and ``frozen``, ``frozen_epochs``, ``lr_factor``, ``dropout``
as for every backbone. Inside the model: grey made three channels, the image scaled, the
preset's own input range, the backbone, pooled where it gives a feature map or tokens. A
saved fold model takes raw images and is read back with KerasHub's layers registered.

With the preset's weights, ``baseline.variants=auto`` trains its frozen features beside it
(``model=frozen_features model.hp.backbone=hub_preset model.hp.preset=DIR``): each image
embedded once by the same layers, a linear head on the features.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
from keras import layers

from comp.api import IMAGE, companions, modalities, preflight, regularizers
from comp.errors import ConfigError
from comp.weights import first_line
from comp_plugins.backbones import HUB, MIN_SIDE, Backbone, _into_backbone, assemble, frozen_companion, pooled

CONFIG, WEIGHTS, CONVERTER = "config.json", "model.weights.h5", "image_converter.json"
PRESET_WEIGHTS, NONE = "preset", "none"


MAIN = "model=hub_preset"
FEATURES = "model=frozen_features with model.hp.backbone=hub_preset"


def _keras_hub(who: str = MAIN):
    try:
        import keras_hub
    except ImportError:
        raise ConfigError(f"{who} needs KerasHub, which is not installed: pip install 'comp[hub]'") from None
    return keras_hub


def preset_folder(setting: str, weights: bool, who: str = MAIN) -> Path:
    """The preset's folder, checked: the files KerasHub will read are there."""
    if not setting:
        raise ConfigError(f"{who}: name the preset with model.hp.preset=DIR, a KerasHub preset folder "
                          f"on this machine (it holds {CONFIG} and {WEIGHTS}; keras_hub's save_to_preset writes one)")
    folder = Path(setting).expanduser()
    for name in (CONFIG, WEIGHTS) if weights else (CONFIG,):
        if not (folder / name).is_file():
            where = "no such folder" if not folder.is_dir() else f"{name} is not in it"
            raise ConfigError(f"model.hp.preset={setting}: {where}; give a KerasHub preset folder ({CONFIG}, "
                              f"{WEIGHTS}); comp reads presets from disk and does not download them")
    return folder


def load_backbone(setting: str, weights: str, who: str = MAIN) -> tuple[keras.Model, bool]:
    """(the preset's backbone, whether it holds the preset's weights); a folder KerasHub cannot
    read, or damaged weights, is a one-line ``ConfigError``."""
    hub = _keras_hub(who)
    with_weights = str(weights).lower() != NONE
    folder = preset_folder(setting, with_weights, who)
    try:
        net = hub.models.Backbone.from_preset(str(folder), load_weights=with_weights)
    except Exception as exc:  # h5py's, Keras's and KerasHub's errors alike: the preset is not complete
        raise ConfigError(f"model.hp.preset={setting}: KerasHub cannot load it ({first_line(exc)}); is the folder a "
                          "complete image backbone preset?") from None
    return net, with_weights


def input_range(setting: str) -> tuple[Any, Any, int | None]:
    """(scale, offset, shorter side) the preset's weights expect of images in [0, 255], from
    its image converter; without one, [0, 1] images at the competition's own size."""
    folder = Path(setting).expanduser()
    if not (folder / CONVERTER).is_file():
        return 1 / 255.0, None, None
    try:
        converter = _keras_hub().layers.ImageConverter.from_preset(str(folder))
    except Exception as exc:
        raise ConfigError(f"model.hp.preset={setting}: its {CONVERTER} cannot be read ({first_line(exc)})") from None
    size = min(converter.image_size) if converter.image_size else None
    return converter.scale, converter.offset, size


def _times_255(value: Any) -> Any:
    """A converter's scale (for images in [0, 255]; None: none, the backbone takes [0, 255])
    for images in [0, 1], as comp's models see them: a number or one per channel."""
    if value is None:
        return 255.0
    return [float(v) * 255.0 for v in value] if isinstance(value, (list, tuple)) else float(value) * 255.0


def _offset(value: Any) -> Any:
    if value is None:
        return 0.0
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else float(value)


def _check(hp: dict[str, Any], who: str = MAIN) -> None:
    if str(hp.get("weights", PRESET_WEIGHTS)).lower() not in (PRESET_WEIGHTS, NONE):
        raise ConfigError(f"model.hp.weights={hp['weights']}: model=hub_preset takes preset (the preset's own "
                          "weights) or none (its architecture from scratch); the weights file is the preset's")
    setting, weights = str(hp.get("preset", "")), str(hp.get("weights", PRESET_WEIGHTS)).lower()
    folder = preset_folder(setting, weights != NONE, who)
    # a run checks its model and the companion beside it several times: a preset read once is read
    key = (str(folder.resolve()), weights, preset_digest(setting) if weights != NONE else "")
    if key in _CHECKED:
        return
    load_backbone(setting, weights, who)
    input_range(setting)
    keras.backend.clear_session()
    _CHECKED.add(key)


_CHECKED: set = set()  # (folder, weights, the preset's digest) read whole by _check in this process


def check_features(hp: dict[str, Any]) -> None:
    """``frozen_features`` on a preset, before any work: its own weights, there and readable."""
    weights = str(hp.get("weights", PRESET_WEIGHTS))
    if weights.lower() != PRESET_WEIGHTS:
        raise ConfigError(f"model.hp.weights={weights}: frozen_features on a KerasHub preset embeds with the "
                          "preset's own weights; leave model.hp.weights at preset")
    _check({**hp, "weights": PRESET_WEIGHTS}, FEATURES)


def preset_resolution(hp, setting: str, shape) -> int:
    """The ``resolution`` knob: the shorter side images are scaled to, by default the
    preset's own input size (its converter's), else the image's (32..512)."""
    from comp.weights import is_probing

    side = None if is_probing() or not setting else input_range(setting)[2]  # a probe reads no preset
    own = min(shape[:2]) if len(shape) >= 3 else MIN_SIDE
    return hp.Int("resolution", MIN_SIDE, 512, default=min(max(side or own, MIN_SIDE), 512))


def _layers_before(setting: str, x, shape, resolution: int):
    """[0, 1] images ``x`` of ``shape`` made what the preset's backbone takes."""
    scale, offset, _ = input_range(setting)
    return _into_backbone(Backbone(HUB, None, _times_255(scale), _offset(offset)), x, shape, resolution)[0]


def features(setting: str, x, shape, resolution: int):
    """The preset's pooled features of [0, 1] images ``x`` of ``shape``, with its weights
    (``frozen_features``' network)."""
    net, _ = load_backbone(setting, PRESET_WEIGHTS)
    return pooled(net(_layers_before(setting, x, shape, resolution)))


def preset_digest(setting: str) -> str:
    """What names a preset's features: a digest of its architecture and weights files."""
    import hashlib

    from comp.weights import file_digest

    folder = preset_folder(setting, True, FEATURES)
    config = hashlib.sha256((folder / CONFIG).read_bytes()).hexdigest()
    converter = folder / CONVERTER
    scaling = hashlib.sha256(converter.read_bytes()).hexdigest() if converter.is_file() else ""
    return hashlib.sha256(f"{config}:{file_digest(str(folder / WEIGHTS))}:{scaling}".encode()).hexdigest()


def _frozen(hp: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Beside the fine-tuned preset, its frozen features on the same weights and input size
    (nothing beside it from scratch: random features are no model)."""
    if str(hp.get("weights", PRESET_WEIGHTS)).lower() == NONE or not hp.get("preset"):
        return []
    return frozen_companion({"backbone": HUB, "preset": str(hp["preset"]), "weights": PRESET_WEIGHTS}, hp)


@modalities(IMAGE)
@regularizers(dropout=0.4)
@preflight(_check)
@companions(_frozen)
def hub_preset(input_spec, task, hp) -> keras.Model:
    """A KerasHub preset's backbone, pretrained, fine-tuned (or frozen, or from scratch)."""
    from comp.weights import is_probing

    setting = hp.Fixed("preset", "")
    weights = hp.Fixed("weights", PRESET_WEIGHTS)  # not searched: checked before any work (_check)
    inputs = keras.Input(shape=input_spec.shape)
    resolution = preset_resolution(hp, setting, input_spec.shape)
    if is_probing():  # a probe build lists the knobs: no preset is read
        return assemble(inputs, layers.Conv2D(3, 1)(inputs), layers.Identity(), False, task, hp, HUB)
    x = _layers_before(setting, inputs, input_spec.shape, resolution)
    net, loaded = load_backbone(setting, weights)
    return assemble(inputs, x, net, loaded, task, hp, HUB)
