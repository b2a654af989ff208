"""Pretrained backbones from ``keras.applications``, fine-tuned (docs/recipe.md, "Starting from
pretrained weights"): the image scaled to the backbone's resolution, grey made three
channels, the backbone's own preprocessing, the backbone without its top (average pooled,
BatchNorm frozen), dropout and the task's head. Inside the model, so a saved
fold model takes the raw images.

Knobs: ``weights`` (``imagenet``: the file Keras keeps in ``$KERAS_HOME/models``; a path to a
weights file of the backbone without its top; or ``none``), ``resolution`` (the shorter
side the image is scaled to), ``frozen`` (the backbone never trains: its features feed the
head, and a step costs the backbone's forward pass only), ``frozen_epochs`` (epochs the head
learns alone before the backbone fine-tunes), ``lr_factor`` (the backbone's share of the LR
after that) and ``dropout``. Weights are read from disk
(fetched once only when the user allows it), checked before any work (``comp.weights``). With ``weights=none`` the
architecture trains from scratch as a whole (its BatchNorm in training mode, one LR).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import keras
from keras import layers

from comp.api import IMAGE, EstimatorModel, companions, modalities, preflight, pretrained, regularizers
from comp.weights import IMAGENET, load_checked, resolve

MIN_SIDE = 32  # the smallest input every backbone here takes
HUB = "hub_preset"  # frozen_features' backbone knob for a KerasHub preset folder (``preset``)


@dataclass(frozen=True)
class Backbone:
    """A ``keras.applications`` architecture and the input range its weights expect."""

    name: str
    build: Callable[..., keras.Model]
    scale: float  # [0, 1] images times this, plus offset: what the backbone's first layer expects
    offset: float = 0.0
    options: tuple[tuple[str, Any], ...] = ()  # more keyword arguments of ``build``


def _resolution(hp, shape) -> int:
    """The ``resolution`` knob: the shorter side the image is scaled to (its own, 32..512)."""
    side = min(shape[:2]) if len(shape) >= 3 else MIN_SIDE
    return hp.Int("resolution", MIN_SIDE, 512, default=min(max(side, MIN_SIDE), 512))


def _backbone(spec: Backbone, shape: tuple[int, int], setting: str) -> tuple[keras.Model, bool]:
    """(the backbone at ``shape`` (height, width), whether it holds weights loaded from
    ``setting``'s file)."""
    path = resolve(spec.name, spec.build, setting)
    net = spec.build(include_top=False, weights=None, input_shape=(*shape, 3), pooling="avg", **dict(spec.options))
    if path:
        load_checked(net, path, setting)
    return net, bool(path)


def _check_weights(spec: Backbone, setting: str) -> None:
    """Before any work: the weights file there, intact and loadable into the backbone."""
    _backbone(spec, (MIN_SIDE, MIN_SIDE), setting)
    keras.backend.clear_session()


def _scaled_shape(shape, resolution: int) -> tuple[int, int]:
    """(height, width) with the shorter side at ``resolution``, the aspect kept."""
    height, width = shape[:2]
    factor = resolution / min(height, width)
    return max(MIN_SIDE, round(height * factor)), max(MIN_SIDE, round(width * factor))


def _into_backbone(spec: Backbone, x, shape, resolution: int):
    """The layers before the backbone, on [0, 1] images of ``shape``: grey made three channels
    (the backbone learnt from three), scaled to ``resolution``, the backbone's input range.
    (the tensor, its (height, width))."""
    if shape[-1] == 1:
        x = layers.Concatenate()([x, x, x])
    size = _scaled_shape(shape, resolution)
    if size != tuple(shape[:2]):
        x = layers.Resizing(*size)(x)
    return layers.Rescaling(spec.scale, offset=spec.offset)(x), size


def assemble(inputs, x, net: keras.Model, loaded: bool, task, hp, name: str) -> keras.Model:
    """The model around a backbone ``net`` called on ``x`` (the layers before it, on
    ``inputs``): pretrained (``loaded``) it is frozen or fine-tuned by the ``frozen``,
    ``frozen_epochs`` and ``lr_factor`` knobs, then pooled where it gives a feature map or
    tokens, dropout, the task's head. Shared by every backbone source (a KerasHub preset too)."""
    frozen = hp.Boolean("frozen", default=False)
    frozen_epochs = hp.Int("frozen_epochs", 0, 10, default=1)
    lr_factor = hp.Float("lr_factor", 0.01, 1.0, sampling="log", default=0.1)
    dropout = hp.Float("dropout", 0.0, 0.6, step=0.05, default=0.2)
    if loaded and frozen:  # features only: no step goes back through the backbone
        net.trainable = False
        x = net(x)
    elif loaded:  # fine-tuned, its BatchNorm frozen with the statistics it learnt
        x = pretrained(net, lr_factor, frozen_epochs)(x)
    else:  # weights=none: the architecture trained from scratch like any other network
        x = net(x)
    x = layers.Dropout(dropout)(pooled(x))
    return keras.Model(inputs, task.head(x), name=name)


def pooled(x):
    """A backbone's output as one vector an image: a feature map (a KerasHub CNN backbone
    gives one) or tokens (a vision transformer's) averaged; pooled features as they are."""
    if len(x.shape) == 4:
        return layers.GlobalAveragePooling2D()(x)
    if len(x.shape) == 3:
        return layers.GlobalAveragePooling1D()(x)
    return x


def frozen_companion(knobs: dict[str, Any], hp: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``frozen_features`` with ``knobs`` (its backbone and weights) at the fine-tuned model's
    resolution where that is fixed: what a pretrained backbone declares beside it."""
    return [("frozen_features", {**knobs, **({"resolution": hp["resolution"]} if "resolution" in hp else {})})]


def _plugin(spec: Backbone) -> Callable:
    def check(hp: dict[str, Any]) -> None:
        _check_weights(spec, hp.get("weights", IMAGENET))

    def frozen(hp: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """Beside the fine-tuned backbone, its frozen features on the same weights and input
        size (nothing beside it from scratch: random features are no model)."""
        weights = str(hp.get("weights", IMAGENET))
        if weights.lower() == "none":
            return []
        return frozen_companion({"backbone": spec.name, "weights": weights}, hp)

    @modalities(IMAGE)
    @regularizers(dropout=0.4)
    @preflight(check)
    @companions(frozen)
    def plugin(input_spec, task, hp) -> keras.Model:
        weights = hp.Fixed("weights", IMAGENET)
        resolution = _resolution(hp, input_spec.shape)
        inputs = keras.Input(shape=input_spec.shape)
        x, shape = _into_backbone(spec, inputs, input_spec.shape, resolution)
        net, loaded = _backbone(spec, shape, weights)
        return assemble(inputs, x, net, loaded, task, hp, spec.name)

    plugin.__name__ = plugin.__qualname__ = spec.name
    plugin.__doc__ = f"keras.applications {spec.build.__name__}, pretrained, fine-tuned. " + __doc__.split("\n\n")[1]
    return plugin


A = keras.applications
# MobileNetV3, EfficientNetV2 and ConvNeXt scale their input inside (include_preprocessing):
# they take [0, 255]; ResNetV2 takes [-1, 1].
SPECS = {
    "mobilenet_v3_small": Backbone("mobilenet_v3_small", A.MobileNetV3Small, 255.0,
                                   options=(("include_preprocessing", True),)),
    "efficientnet_v2_b0": Backbone("efficientnet_v2_b0", A.EfficientNetV2B0, 255.0,
                                   options=(("include_preprocessing", True),)),
    "convnext_tiny": Backbone("convnext_tiny", A.ConvNeXtTiny, 255.0, options=(("include_preprocessing", True),)),
    "resnet50_v2": Backbone("resnet50_v2", A.ResNet50V2, 2.0, -1.0),
}
mobilenet_v3_small = _plugin(SPECS["mobilenet_v3_small"])
efficientnet_v2_b0 = _plugin(SPECS["efficientnet_v2_b0"])
convnext_tiny = _plugin(SPECS["convnext_tiny"])
resnet50_v2 = _plugin(SPECS["resnet50_v2"])


# -- frozen features: every image embedded once, a fast head fitted on the embeddings ----------
class Embedder:
    """A scikit-learn transformer: uint8 images (n, height, width, channels) -> the backbone's
    pooled features, through the same layers as the fine-tuned plugins (``backbone``: one of
    ``SPECS``, or ``hub_preset`` with ``preset`` a KerasHub preset folder). Each image is
    embedded once: its features are kept by the image's content, in memory and on disk
    (``<cache>/embeddings/``, under a digest of the backbone, the weights' content and
    the resolution), so neither the folds a row appears in, nor a search's trials in their
    own processes, nor a later run embed it again. The network is not pickled with a fold
    model: it is rebuilt from the weights file when a loaded model first embeds."""

    # (backbone, weights digest, resolution) -> {image digest: features}; one configuration at a
    # time in memory (a run embeds with one)
    _cache: dict = {}
    CHUNK = 1024  # images converted to float and embedded at a time
    preset = ""  # fold models pickled before presets could embed have none

    def __init__(self, backbone: str, weights: str, resolution: int, preset: str = ""):
        self.backbone, self.weights, self.resolution, self.preset = backbone, weights, resolution, preset
        self._net = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_net"}

    def __setstate__(self, state):
        self.__dict__.update(state, _net=None)

    def get_params(self, deep=True):
        return {"backbone": self.backbone, "weights": self.weights, "resolution": self.resolution,
                "preset": self.preset}

    def set_params(self, **params):
        self.__dict__.update(params)
        return self

    def fit(self, x, y=None):
        return self

    def _key(self) -> tuple:
        from comp.weights import file_digest

        if self.backbone == HUB:
            from comp_plugins.hub_presets import preset_digest

            return (HUB, preset_digest(self.preset), self.resolution)
        path = resolve(self.backbone, SPECS[self.backbone].build, self.weights)
        return (self.backbone, file_digest(path) if path else None, self.resolution)

    def _folder(self, key: tuple):
        import hashlib

        from comp.paths import cache_root

        return cache_root() / "embeddings" / hashlib.sha256(repr(key).encode()).hexdigest()[:20]

    def _store(self, key: tuple) -> dict:
        """The features known for ``key``: read once per process from every part on disk."""
        import numpy as np

        if key not in self._cache:
            self._cache.clear()
            store = self._cache[key] = {}
            for part in sorted(self._folder(key).glob("part-*.npz")):
                try:
                    with np.load(part) as saved:
                        store.update(zip(saved["digests"].tolist(), saved["features"]))
                except (OSError, ValueError, KeyError):  # a damaged part: its images are embedded again
                    continue
        return self._cache[key]

    def _save(self, key: tuple, digests: list[str], features) -> None:
        """A new part on disk: written under a temporary name, then renamed (a kill leaves no
        half part; processes embedding at once write parts of their own)."""
        import os
        import uuid

        import numpy as np

        folder = self._folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{uuid.uuid4().hex}"
        tmp = folder / f".{name}.tmp.npz"
        np.savez(tmp, digests=np.array(digests), features=np.asarray(features, dtype=np.float32))
        os.replace(tmp, folder / f"{name}.npz")

    def _network(self, shape) -> keras.Model:
        if self._net is None:
            inputs = keras.Input(shape=shape)
            x = layers.Rescaling(1 / 255.0)(inputs)  # uint8 -> [0, 1], as comp's Keras models see images
            if self.backbone == HUB:
                from comp_plugins.hub_presets import features

                out = features(self.preset, x, shape, self.resolution)
            else:  # what the fine-tuned plugins do, their backbone pooled
                spec = SPECS[self.backbone]
                x, size = _into_backbone(spec, x, shape, self.resolution)
                out = _backbone(spec, size, self.weights)[0](x)
            self._net = keras.Model(inputs, out)
        return self._net

    def transform(self, x):
        import hashlib

        import numpy as np

        x = np.asarray(x)
        key = self._key()
        store = self._store(key)
        shape = repr(x.shape[1:]).encode()  # the same bytes in another shape are another image
        digests = [hashlib.sha1(shape + image.tobytes()).hexdigest() for image in x]
        missing = list(dict.fromkeys(i for i, d in enumerate(digests) if d not in store))
        for start in range(0, len(missing), self.CHUNK):
            chunk = missing[start:start + self.CHUNK]
            features = self._embed(x[chunk])
            new = [digests[i] for i in chunk]
            store.update(zip(new, features))
            self._save(key, new, features)
        return np.stack([store[d] for d in digests]).astype("float32")

    def _embed(self, images):
        """The features of uint8 ``images``, through the network."""
        return self._network(images.shape[1:]).predict(images.astype("float32"), batch_size=128, verbose=0)


def _features(input_spec, task, hp):
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    # Fixed, not searched: another backbone's weights are another file, checked before any work
    from comp.weights import is_probing

    backbone = hp.Fixed("backbone", "mobilenet_v3_small")
    # backbone=hub_preset: the KerasHub preset folder (a knob only there, and where knobs are listed)
    preset = hp.Fixed("preset", "") if backbone == HUB or is_probing() else ""
    if backbone == HUB:
        from comp_plugins.hub_presets import PRESET_WEIGHTS, preset_resolution

        weights = hp.Fixed("weights", PRESET_WEIGHTS)
        resolution = preset_resolution(hp, preset, input_spec.shape)
    else:
        weights = hp.Fixed("weights", IMAGENET)
        resolution = _resolution(hp, input_spec.shape)
    strength = hp.Float("regularization", 1e-4, 1e3, sampling="log", default=1.0)
    head = (Ridge(alpha=strength) if task.estimator_role == "regressor"
            else LogisticRegression(C=1.0 / strength, max_iter=2000))
    return Pipeline([("embed", Embedder(backbone, weights, resolution, preset)), ("scale", StandardScaler()),
                     ("model", head)])


def _check_features(hp: dict) -> None:
    from comp.errors import ConfigError

    name = hp.get("backbone", "mobilenet_v3_small")
    if name == HUB:
        from comp_plugins.hub_presets import check_features

        return check_features(hp)
    if hp.get("preset"):
        raise ConfigError(f"model.hp.preset={hp['preset']}: frozen_features embeds with a KerasHub preset only with "
                          f"model.hp.backbone={HUB}; add it, or leave out model.hp.preset")
    weights = str(hp.get("weights", IMAGENET))
    if name not in SPECS:
        raise ConfigError(f"model.hp.backbone={name}: frozen_features takes one of {', '.join(SPECS)} or {HUB} "
                          "(with model.hp.preset=DIR)")
    if weights.lower() == "none":  # random features would differ in every process that rebuilds them
        raise ConfigError("model.hp.weights=none: frozen_features needs pretrained weights (imagenet or a file); "
                          "for a network from scratch pick another model")
    _check_weights(SPECS[name], weights)


frozen_features = EstimatorModel(
    build=_features,
    modalities=(IMAGE,),
    tasks=("classification", "multilabel", "regression"),
    description="a pretrained backbone's features, each image embedded once, and a logistic or ridge head "
                "(knobs: backbone, weights, resolution, regularization; backbone=hub_preset with preset=DIR "
                "embeds with a KerasHub preset)",
    regularizers={"regularization": 10.0},
    preflight=_check_features,
)
